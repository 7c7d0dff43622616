"""DAPO training with and without a per-rollout RSP (`rsp-probe train-rl`, docs/train-rl.md).

dapo.py: the objective (pure tensor maths); policy.py: the training forward pass with the
RSP in its slots; rollouts.py: groups sampled by the toolkit's sampler and graded;
checkpoint.py: save and resume; evaluate.py: the probes run on each checkpoint; loop.py: the
training loop."""
