"""Prompt templates: how a question becomes the text the model reads, and what answer
format that text asks for (grading follows the instruction the model was given).

    --prompt-template auto          plain for a base model, math-cot inside a chat template
    --prompt-template plain         "{question}\\nAnswer:"
    --prompt-template math-cot      "{question}\\nPlease reason step by step, and put your
                                    final answer within \\boxed{}." (Qwen2.5-Math)
    --prompt-template few-shot:F    worked examples from F (JSONL of question/answer), then plain
    --prompt-template FILE          a text file holding "{question}" once

A template is `before + question + after`. Without a chat template, `after` is the answer
cue (a suffix RSP goes between question and cue); inside a chat template the whole text is
the user turn and the assistant header is the cue.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rsp_probe.errors import UsageError

QUESTION_SLOT = "{question}"
PLAIN_CUE = "\nAnswer:"
MATH_COT = "\nPlease reason step by step, and put your final answer within \\boxed{}."
PRESETS = {"plain": ("", PLAIN_CUE), "math-cot": ("", MATH_COT)}
FEW_SHOT = "few-shot:"
AUTO = "auto"
CHAT_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class PromptTemplate:
    name: str  # a preset, "few-shot:FILE" or the template file's path
    before: str  # text before the question
    after: str  # text after it: the cue (plain) or the rest of the user turn (chat)

    @property
    def asks_boxed(self) -> bool:
        """Whether the instruction asks for the final answer in \\boxed{}."""
        return "\\boxed" in self.before + self.after

    def to_dict(self) -> dict:
        return {**asdict(self), "answer_format": "boxed" if self.asks_boxed else "####"}


def template_for(spec: str, chat: bool) -> PromptTemplate:
    """The template `--prompt-template spec` names; `auto` depends on whether the chat
    template is used. Raises UsageError (one line) for an unknown name or a bad file."""
    if spec == AUTO:
        spec = "math-cot" if chat else "plain"
    if spec in PRESETS:
        return PromptTemplate(spec, *PRESETS[spec])
    if spec.startswith(FEW_SHOT):
        return _few_shot(spec.removeprefix(FEW_SHOT))
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--prompt-template {spec}: not one of {AUTO}, "
                         f"{', '.join(PRESETS)}, {FEW_SHOT}FILE, or a template file")
    text = _read(path, "--prompt-template")
    if text.count(QUESTION_SLOT) != 1:
        raise UsageError(f"--prompt-template {spec}: the file must hold {QUESTION_SLOT} exactly "
                         f"once (found {text.count(QUESTION_SLOT)})")
    before, after = text.removesuffix("\n").split(QUESTION_SLOT)  # an editor's final newline
    return PromptTemplate(spec, before, after)


def _few_shot(file: str) -> PromptTemplate:
    """Worked examples, each "question\\nAnswer: answer", then the question to answer."""
    path = Path(file)
    if not path.is_file():
        raise UsageError(f"--prompt-template {FEW_SHOT}{file}: no such file")
    shots = []
    for lineno, line in enumerate(_read(path, "--prompt-template").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            shots.append(f"{record['question']}{PLAIN_CUE} {record['answer']}\n\n")
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"{path.name}:{lineno}: a few-shot example must be a JSON object "
                             'with "question" and "answer"') from None
    if not shots:
        raise UsageError(f"--prompt-template {FEW_SHOT}{file}: no examples")
    return PromptTemplate(f"{FEW_SHOT}{file}", "".join(shots), PLAIN_CUE)


def chat_template_text(mode: str) -> str | None:
    """The Jinja text of `--chat-template FILE`, or None for auto/on/off."""
    if mode in CHAT_MODES:
        return None
    path = Path(mode)
    if not path.is_file():
        raise UsageError(f"--chat-template must be auto, on, off or a Jinja file; "
                         f"no such file: {mode}")
    return _read(path, "--chat-template")


def _read(path: Path, flag: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{flag} {path}: cannot be read ({err})") from None
