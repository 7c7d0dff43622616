"""User-facing errors: the CLI prints their message as one line and exits with code 2
(usage and input errors) or 1 (a grading failure)."""


class UsageError(Exception):
    """Bad input from the user (a path, an option, a dataset line). Never a bug."""


class ModelNotFoundError(UsageError):
    """A model path or Hub id that cannot be resolved locally."""


class KVCacheSelfTestError(UsageError):
    """Cached decoding disagrees with a full forward pass: the numbers would be wrong."""


class GradingError(Exception):
    """An answer could not be checked (the checker raised, died or timed out). The CLI prints
    one line and exits with code 1: a failed check is never counted as a wrong answer."""


class CheckerUnavailableError(GradingError):
    """The answer checker's worker processes could not start, so nothing could be graded."""
