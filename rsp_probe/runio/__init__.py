"""How a run directory survives faults: the --out lock, atomic publish, leftovers, integrity.
No torch here; rsp_probe.runs builds the public run-directory contract on these pieces."""
