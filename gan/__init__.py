"""gan-lab. Layers, top to bottom (pyproject.toml's import contract enforces the order):
entry points (train, generate, evaluate, report, project, export, bench, search, classifier),
sweeps, runs, sampling, metrics, tricks, core, networks | data, io."""
