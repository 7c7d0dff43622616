"""Trained soft prompts: k vectors optimised at the RSP's placement (train.py), saved as
safetensors with a JSON card (io.py), and injected by `--law trained --soft-prompt FILE`
(or trained+noise, trained-fit: the laws of rsp_probe.laws.trained) through the same
placement and sampler path as an RSP (rsp_probe/rsp.py)."""
