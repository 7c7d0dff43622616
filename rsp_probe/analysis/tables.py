"""The tables some experiments write beside their trajectories, named once: the experiment
that writes one and the summaries, figures and claims that read it share the name. Storage
(rsp_probe.runs) knows only kinds of files (JSON, tables, vectors, steps), never these."""

DILUTION_FILE = "dilution_fit.json"  # attention: the dilution law fitted per head
BRANCHING_FILE = "branching.parquet"  # branching: first divergence steps per pair
PASSK_FILE = "passk.parquet"  # passk: Pass@k per condition and k
KNOCKOUT_FILE = "knockout.parquet"  # knockout: KL to the reference per step and arm
DOSE_FILE = "dose.parquet"  # dose: KL to the baseline per step and dose
SCORE_SHIFT_FILE = "score_shift.parquet"  # dose: the RSP's shift of the attention scores
# per pair of trajectories of one prompt and condition, per step of their shared prefix:
# sum_v p_a(v) p_b(v) of the two tempered distributions (rsp_probe.probes.pair_overlap)
PAIR_OVERLAP_FILE = "pair_overlap.parquet"
