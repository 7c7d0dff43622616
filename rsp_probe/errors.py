"""User-facing errors: the CLI prints their message as one line and exits with code 2."""


class UsageError(Exception):
    """Bad input from the user (a path, an option, a dataset line). Never a bug."""


class ModelNotFoundError(UsageError):
    """A model path or Hub id that cannot be resolved locally."""


class KVCacheSelfTestError(UsageError):
    """Cached decoding disagrees with a full forward pass: the numbers would be wrong."""
