"""Key groups of one model input: which positions the attention budget sums over. No torch.

The newest query's attention is split over five groups that partition its keys:
    rsp        the k RSP slots
    bos        position 0 (the attention sink; the first prompt token when there is no BOS),
               unless an RSP slot sits there
    prompt     every other input position before the cue: chat header and question
    cue        the template tokens after the question (answer cue, chat-template tail),
               i.e. the input's last n_cue positions that are not RSP slots
    generated  the tokens generated so far (t - 1 keys at step t)
"""

from __future__ import annotations

from collections.abc import Sequence

GROUPS = ("rsp", "bos", "prompt", "cue", "generated")
INPUT_GROUPS = GROUPS[:4]  # the groups of input positions; codes are indices into GROUPS
RSP, BOS, PROMPT, CUE, GENERATED = range(len(GROUPS))


def input_key_groups(n_input: int, rsp_positions: Sequence[int], n_cue: int) -> list[int]:
    """The group code of each of the n_input input positions (RSP slots included)."""
    slots = set(rsp_positions)
    codes = []
    for position in range(n_input):
        if position in slots:
            codes.append(RSP)
        elif position == 0:
            codes.append(BOS)
        elif position >= n_input - n_cue:
            codes.append(CUE)
        else:
            codes.append(PROMPT)
    return codes


def group_sizes(n_input: int, rsp_positions: Sequence[int], n_cue: int) -> dict[str, int]:
    """Number of input keys in each input group (generated has t - 1 at step t)."""
    codes = input_key_groups(n_input, rsp_positions, n_cue)
    return {name: codes.count(code) for code, name in enumerate(INPUT_GROUPS)}
