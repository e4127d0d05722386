"""gan-lab's Optuna sweeper for Hydra (`hydra/sweeper: gan_optuna`): Optuna >= 4, a journal
file (or any Optuna storage) shared by many workers, pruning, seed-averaged trials. Hydra finds
it in the `hydra_plugins` namespace package; the search itself is gan/sweeps/optuna_sweep.py."""
