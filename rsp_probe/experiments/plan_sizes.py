"""The sizes of `rsp-probe reproduce`'s runs on the default model, shared by the experiments'
declarations (each experiment module declares its own runs) and fixed before any result was
looked at.

Doses: every comparison runs at k = 4 and k = 16 (the dose-response run spans 1-32), since at
k = 4 alone the RSP changes little on the default model. The ablations move one factor away
from the main entropy run each.
"""

MAIN = dict(n_prompts=24, max_new_tokens=96)
ABLATION_DOSES = (0, 4, 16)
SAMPLED = dict(MAIN, samples=8, temperature=1.0)  # branching and passk: one dose per run
PASSK = dict(MAIN, n_prompts=60, samples=16, temperature=1.0, pass_k=(1, 2, 4, 8, 16))
# knockout, dose and compare-prompts: teacher-forced comparisons over half the tokens
COMPARED = dict(MAIN, n_prompts=24, max_new_tokens=48, samples=4, temperature=1.0,
                pass_k=(1, 2, 4))
