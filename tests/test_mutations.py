"""The suite catches the five bugs a mutation check once found it missing (issue #18).

Each test applies one deliberate bug to a copy of a module's source (text replacement,
executed as a fresh module; the real module is untouched), runs the reference checks of
tests/test_references_*.py against the mutant, and expects them to fail. The unmutated code
passes the same checks in those files. A mutation site that no longer exists fails loudly, so
a refactor cannot silently turn these tests into no-ops.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
from test_references_grading import check_hand_made, check_records
from test_references_numbers import (
    check_influence,
    check_paired_table,
    check_pass_at_k_interval,
    check_widening,
)
from test_references_probes import check_probes, generate_jobs

import rsp_probe.probes.logits
from rsp_probe.config import DataConfig
from rsp_probe.tasks.arithmetic import DEFAULT_TASK, generate
from rsp_probe.tasks.grading import grade


def mutant(module_name: str, original: str, replacement: str) -> types.ModuleType:
    """A fresh copy of `module_name` with its one occurrence of `original` replaced."""
    path = Path(importlib.util.find_spec(module_name).origin)
    source = path.read_text()
    assert source.count(original) == 1, (
        f"{module_name}: the mutation site {original!r} is gone or ambiguous; "
        "move this mutation to where the code now computes the same number")
    module = types.ModuleType(f"{module_name}__mutant")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # dataclasses look their module up while building
    exec(compile(source.replace(original, replacement), f"{path} (mutant)", "exec"),
         module.__dict__)
    return module


def test_collision_ignoring_the_temperature_is_caught(loaded_qwen2, hf_qwen2, monkeypatch):
    step = mutant("rsp_probe.probes.logits",
                  "torch.softmax(logits.float() / temperature.clamp(min=1e-6), dim=-1)",
                  "torch.softmax(logits.float(), dim=-1)")
    monkeypatch.setattr(rsp_probe.probes.logits, "collision_probability",
                        step.collision_probability)
    jobs, trajectories = generate_jobs(loaded_qwen2)
    with pytest.raises(AssertionError, match="collision|Not equal"):
        check_probes(loaded_qwen2, hf_qwen2, jobs, trajectories, 0.5)
    check_probes(loaded_qwen2, hf_qwen2, jobs, trajectories, 1.0)  # the mutant is right at 1


def test_kl_in_the_wrong_direction_is_caught():
    influence = mutant("rsp_probe.probes.influence",
                       '"kl": (p_rsp * (log_rsp - log_base))',
                       '"kl": (p_base * (log_base - log_rsp))')
    with pytest.raises(AssertionError):
        check_influence(influence.influence_values)


def test_interval_ignoring_the_confidence_level_is_caught():
    passk = mutant("rsp_probe.analysis.pass_at_k",
                   "percentile_interval(per_problem[idx].mean(axis=1), ci)",
                   "percentile_interval(per_problem[idx].mean(axis=1), 0.95)")
    with pytest.raises(AssertionError):
        check_pass_at_k_interval(passk.bootstrap_pass_at_k, 0.5)
    with pytest.raises(AssertionError):
        check_widening(passk.bootstrap_pass_at_k, passk.paired_difference)


def test_paired_difference_as_b_minus_a_is_caught(tmp_path):
    analysis = mutant("rsp_probe.analysis.passk",
                      "paired_difference(c_a[keep], c_b[keep], n_a[keep], n_b[keep], k)",
                      "paired_difference(c_b[keep], c_a[keep], n_b[keep], n_a[keep], k)")
    with pytest.raises(AssertionError):
        check_paired_table(analysis.paired_table, tmp_path)


def _solution_records(grade):
    """Each problem's own worked solution (right) and the same with a wrong final answer,
    graded by `grade`."""
    problems = [p for p in generate(DEFAULT_TASK, "test", 4, seed=0) for _ in range(2)]
    texts = [p.solution if i % 2 == 0 else f"{p.solution[:-len(p.answer)]}99999"
             for i, p in enumerate(problems)]
    graded = grade(DataConfig(), texts, [p.answer for p in problems])
    return [{"prompt_id": p.id, "reference_answer": p.answer, "text": t, "answer": g.answer,
             "correct": g.correct} for p, t, g in zip(problems, texts, graded)]


def test_every_arithmetic_trajectory_incorrect_is_caught():
    grading = mutant("rsp_probe.tasks.grading",
                     "Grade(extract_answer(t), is_correct(t, ref))",
                     "Grade(extract_answer(t), False)")
    with pytest.raises(AssertionError):
        check_hand_made(grading.grade, "12 + 7 = 19. 19 - 5 = 14. #### 14", (14, True))
    check_records(_solution_records(grade))  # the real grader passes these records
    with pytest.raises(AssertionError):
        check_records(_solution_records(grading.grade))
