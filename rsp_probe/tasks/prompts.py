"""From a Problem to the token segments of a model input.

The template states where the question ends and the answer cue begins, because that is
where a suffix RSP goes. Segments are tokenized separately and concatenated; the embedded
default model is trained on exactly this segmentation, so nothing shifts at the seams.
"""

from __future__ import annotations

from dataclasses import dataclass

from rsp_probe.tasks.problem import Problem

PLAIN_CUE = "\nAnswer:"
CHAT_INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."
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


def encode_plain(tokenizer, question: str, cue: str = PLAIN_CUE) -> EncodedPrompt:
    """Base-model prompt: [BOS] question cue, the model continues after the cue."""
    return EncodedPrompt(bos_ids(tokenizer), _ids(tokenizer, question), _ids(tokenizer, cue))


def encode_chat(tokenizer, question: str) -> EncodedPrompt:
    """Chat prompt: the user turn holds the question; suffix RSPs go after the user content
    and before the assistant header, prefix RSPs right before the user content."""
    messages = [{"role": "user", "content": _SENTINEL}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    before, after = rendered.split(_SENTINEL)
    return EncodedPrompt(_ids(tokenizer, before), _ids(tokenizer, question + CHAT_INSTRUCTION),
                         _ids(tokenizer, after))


def encode_problem(tokenizer, problem: Problem, chat: bool) -> EncodedPrompt:
    return encode_chat(tokenizer, problem.question) if chat else encode_plain(tokenizer,
                                                                              problem.question)


def use_chat_template(tokenizer, mode: str) -> bool:
    """auto: use the template when the tokenizer has one."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    return has_template if mode == "auto" else mode == "on"


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids if text else []
