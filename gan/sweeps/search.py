"""Search-space knobs that exist only when their trick is on (Optuna's define-by-run).

The sweeper samples a flat space from `hydra.sweeper.params`. R1's gamma means nothing without
R1, and an override `tricks.r1.gamma=...` fails when `tricks` does not hold r1, so those knobs
are asked here, after `tricks` was sampled (`hydra.sweeper.custom_search_space`). TPE then
models each one from the trials that had its trick. Also: queueing a trial with known values
(`python -m gan.search`).
"""

from __future__ import annotations

from typing import Any

from optuna.distributions import CategoricalDistribution, FloatDistribution

from gan.sweeps.space import outside, parse_space, value_in

# trick in the sampled `tricks` list -> (override key, its distribution)
CONDITIONAL = {
    "r1": ("tricks.r1.gamma", FloatDistribution(0.01, 10.0, log=True)),
    "ema": ("tricks.ema.decay", CategoricalDistribution([0.99, 0.999])),
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
            key, dist = CONDITIONAL[trick]
            trial._suggest(key, dist)


def enqueue(storage: str, study_name: str, params: dict[str, Any]) -> None:
    """Queue a trial with known values (e.g. the current default) in a stored study: the
    sweeper's next `ask()` runs it before TPE's own suggestions (Optuna's warm start)."""
    from gan.sweeps.storage import load_study

    load_study(storage, study_name).enqueue_trial(params)


def search_config(argv: list[str]) -> tuple[Any, dict[str, str]]:
    """(the composed search config, the trial's knobs) from `gan.search`'s arguments: a
    `hparams_search=`, `hparams_search.*` (the search's own settings: seeds, statistic), `hydra.*`
    or `+`/`~` argument composes the config, the rest are knobs."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gan.io.config import CONF_DIR

    is_config = ("hparams_search=", "hparams_search.", "hydra.", "+", "~")
    config = [a for a in argv if a.startswith(is_config)]
    if not any(a.startswith("hparams_search=") for a in config):
        raise ValueError("name the search: hparams_search=<name> (conf/hparams_search/)")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("train", overrides=config, return_hydra_config=True)
    except Exception as err:  # noqa: BLE001 (Hydra's composition errors: bad input, one line)
        raise ValueError(str(err).splitlines()[0]) from None
    finally:
        GlobalHydra.instance().clear()
    return cfg, dict(a.split("=", 1) for a in argv if not a.startswith(is_config))


def queued_trial(cfg: Any, knobs: dict[str, str]) -> tuple[str, str, dict[str, Any]]:
    """(storage, study name, params) of the trial to queue; a knob outside the search space is
    refused (Optuna would ignore it silently)."""
    from pathlib import Path

    from gan.sweeps.storage import storage_url

    sweeper = cfg.hydra.sweeper
    space = full_space(sweeper.get("params"))
    unknown = sorted(set(knobs) - set(space))
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not in the search space of "
                         f"{sweeper.study_name} (hydra.sweeper.params: {', '.join(sorted(space))})")
    # a value the space cannot hold would poison the study: every worker would meet it
    bad = [why for key, value in knobs.items() if (why := outside(key, value, space[key]))]
    if bad:
        raise ValueError("; ".join(bad))
    if not knobs:
        raise ValueError("give the trial's values: key=value for knobs of hydra.sweeper.params")
    storage = storage_url(sweeper.get("storage"), cfg.hydra.sweep.dir)
    if "://" not in storage and not Path(storage).is_file():
        raise ValueError(f"no study at {storage}; start the search first "
                         f"(python -m gan.train -m hparams_search=...)")
    return storage, str(sweeper.study_name), {k: value_in(v, space[k]) for k, v in knobs.items()}


def full_space(params) -> dict:
    """Every knob's distribution: `hydra.sweeper.params`, and the tricks' own knobs."""
    space, _ = parse_space(dict(params or {}), [])
    return {**space, **{key: dist for key, dist in CONDITIONAL.values()}}


def poisoned(trial: Any, space: dict) -> str | None:
    """Why a queued trial's fixed values (`gan.search`, or Optuna's enqueue_trial) do not fit
    the search space, or None: such a trial is failed with the reason, never run."""
    fixed = trial.storage.get_trial_system_attrs(trial._trial_id).get("fixed_params") or {}
    bad = [why for key, value in fixed.items() if key in space
           and (why := outside(key, value, space[key]))]
    return "; ".join(bad) or None
