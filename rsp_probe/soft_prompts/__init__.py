"""Trained soft prompts: k vectors optimised at the RSP's placement (train.py), saved as
safetensors with a JSON card (io.py), and injected by `--law trained --soft-prompt FILE`
through the same placement and sampler path as an RSP (rsp_probe/rsp.py)."""

# --law values that read --soft-prompt FILE:
#   trained        the trained vectors themselves, the same in every trajectory
#   trained+noise  the trained vectors plus RSP noise N(0, (sigma_scale * sigma)^2) per
#                  trajectory (sigma fitted to the embedding table, as for the Gaussian law)
#   trained-fit    a fresh draw per trajectory from a Gaussian fitted to the trained vectors:
#                  their per-dimension mean and pooled variance (the `per-dim` law's form)
TRAINED_LAWS = ("trained", "trained+noise", "trained-fit")
