"""The bottom layer: what files mean. Atomic writes, the checkpoint format, run artefacts
(status.json, metrics.json, curve.csv, FAILED.txt), configs and the one error style."""
