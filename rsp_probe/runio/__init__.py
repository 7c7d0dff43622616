"""Storage: how a run directory is written, read and survives faults. The kinds of files
(formats.py), the readers (reader.py), the --out lock, atomic publish and leftovers, the DONE
manifest (integrity.py), streamed parts and the merge of shards. No torch, and no experiment:
what an experiment adds arrives as parameters. rsp_probe.runs is the public face.
"""
