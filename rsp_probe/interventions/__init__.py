"""Interventions: masks and patches applied at the same backend sites as the probes.

An intervention is a StepProbe whose tap returns a replacement value (backends/base.py); the
sampler builds it per batch like a probe (`generate(..., interventions=[factory])`).
"""
