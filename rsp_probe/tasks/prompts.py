"""From a Problem to the token segments of a model input.

The template states where the question ends and the answer cue begins, because that is
where a suffix RSP goes. Segments are tokenized separately and concatenated; the embedded
default model is trained on exactly this segmentation, so nothing shifts at the seams.
"""

from __future__ import annotations

from dataclasses import dataclass

from rsp_probe.errors import UsageError
from rsp_probe.tasks.problem import Problem
from rsp_probe.tasks.templates import (
    MATH_COT,
    PLAIN_CUE,
    PromptTemplate,
    chat_template_text,
    template_for,
)

CHAT_INSTRUCTION = MATH_COT  # the `auto` template inside a chat template
_SENTINEL = "\x00RSP-QUESTION\x00"


@dataclass(frozen=True)
class EncodedPrompt:
    """Token ids of one prompt in three segments: head (BOS, chat header), question, cue."""

    head: list[int]
    question: list[int]
    cue: list[int]

    @property
    def token_ids(self) -> list[int]:
        return self.head + self.question + self.cue


def bos_ids(tokenizer) -> list[int]:
    """[BOS] when the tokenizer defines one (Llama, R1-Distill); Qwen2.5 base has none."""
    return [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]


@dataclass(frozen=True)
class PromptFormat:
    """Everything that turns a question into model input; config.json records `to_dict()`."""

    template: PromptTemplate
    chat: bool
    chat_template: str | None = None  # Jinja text of --chat-template FILE
    system_prompt: str | None = None

    def to_dict(self) -> dict:
        return {**self.template.to_dict(), "chat": self.chat,
                "chat_template_file": self.chat_template is not None,
                "system_prompt": self.system_prompt}


def prompt_format(tokenizer, data) -> PromptFormat:
    """The format --prompt-template, --chat-template and --system-prompt (in `data`, a
    DataConfig) ask for with this tokenizer; each misuse is one UsageError line."""
    chat_text = chat_template_text(data.chat_template)
    chat = chat_text is not None or use_chat_template(tokenizer, data.chat_template)
    system = getattr(data, "system_prompt", None)
    if system is not None and not chat:
        raise UsageError("--system-prompt needs a chat template (the tokenizer has none, or "
                         "--chat-template off); pass --chat-template FILE")
    template = template_for(getattr(data, "prompt_template", "auto"), chat)
    return PromptFormat(template, chat, chat_text, system)


def encode_plain(tokenizer, question: str, cue: str = PLAIN_CUE, before: str = ""
                 ) -> EncodedPrompt:
    """Base-model prompt: [BOS] before question cue, the model continues after the cue."""
    return EncodedPrompt(bos_ids(tokenizer) + _ids(tokenizer, before), _ids(tokenizer, question),
                         _ids(tokenizer, cue))


def encode_chat(tokenizer, question: str, fmt: PromptFormat | None = None) -> EncodedPrompt:
    """Chat prompt: the user turn holds the templated question; suffix RSPs go after the user
    content and before the assistant header, prefix RSPs right before the question."""
    from jinja2 import TemplateError

    fmt = fmt or PromptFormat(template_for("auto", True), True)
    messages = [{"role": "user", "content": _SENTINEL}]
    if fmt.system_prompt is not None:
        messages.insert(0, {"role": "system", "content": fmt.system_prompt})
    try:
        rendered = tokenizer.apply_chat_template(
            messages, chat_template=fmt.chat_template, tokenize=False,
            add_generation_prompt=True)
    except (TemplateError, ValueError, TypeError, KeyError) as err:  # a bad template FILE
        raise UsageError(f"the chat template cannot be rendered: {type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}") from None
    if rendered.count(_SENTINEL) != 1:
        raise UsageError("the chat template does not place the user message exactly once")
    before, after = rendered.split(_SENTINEL)
    head = _ids(tokenizer, before) + _ids(tokenizer, fmt.template.before)
    return EncodedPrompt(head, _ids(tokenizer, question + fmt.template.after),
                         _ids(tokenizer, after))


def encode_problem(tokenizer, problem: Problem, fmt: PromptFormat | bool) -> EncodedPrompt:
    """`fmt`: a PromptFormat, or a bool (chat or not) for the `auto` template."""
    if isinstance(fmt, bool):
        fmt = PromptFormat(template_for("auto", fmt), fmt)
    if fmt.chat:
        return encode_chat(tokenizer, problem.question, fmt)
    return encode_plain(tokenizer, problem.question, fmt.template.after, fmt.template.before)


def use_chat_template(tokenizer, mode: str) -> bool:
    """auto: use the template when the tokenizer has one; on without one is an error."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if mode == "on" and not has_template:
        raise UsageError(f"--chat-template on: {getattr(tokenizer, 'name_or_path', 'the model')}"
                         " has no chat template; use auto, off, or --chat-template FILE")
    return has_template if mode == "auto" else mode != "off"  # on, or a FILE


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids if text else []
