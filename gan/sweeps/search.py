"""Search-space knobs that exist only when their trick is on (Optuna's define-by-run).

hydra-optuna-sweeper samples a flat space from `hydra.sweeper.params`. R1's gamma means nothing
without R1, and an override `tricks.r1.gamma=...` fails when `tricks` does not hold r1, so those
knobs are asked here, after `tricks` was sampled (`hydra.sweeper.custom_search_space`). TPE then
models each one from the trials that had its trick.
"""

from __future__ import annotations

from typing import Any

# trick in the sampled `tricks` list -> (override key, how to sample it)
CONDITIONAL = {
    "r1": ("tricks.r1.gamma", lambda trial, key: trial.suggest_float(key, 0.01, 10.0, log=True)),
    "ema": ("tricks.ema.decay", lambda trial, key: trial.suggest_categorical(key, [0.99, 0.999])),
}


def chosen_tricks(value: Any) -> list[str]:
    """`tricks` as the sweeper holds it: the string "[ema,r1]" (a choice of lists is written as
    quoted strings, since Optuna's categorical values must be scalars) or a list."""
    if isinstance(value, str):
        value = [t.strip() for t in value.strip("[]").split(",") if t.strip()]
    return list(value or [])


def trick_knobs(cfg: Any, trial: Any) -> None:
    """`custom_search_space` hook, called per trial with the sweeper's config: adds the knobs of
    the tricks this trial turned on to `trial.params` (they become its overrides)."""
    for trick in chosen_tricks(trial.params.get("tricks")):
        if trick in CONDITIONAL:
            key, suggest = CONDITIONAL[trick]
            suggest(trial, key)


def enqueue(storage: str, study_name: str, params: dict[str, Any]) -> None:
    """Queue a trial with known values (e.g. the current default) in a stored study: the
    sweeper's next `ask()` runs it before TPE's own suggestions (Optuna's warm start)."""
    import warnings

    import optuna

    with warnings.catch_warnings():  # enqueue_trial is "experimental" in optuna 2.x
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.load_study(study_name=study_name, storage=storage).enqueue_trial(params)


def parse_value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
