"""The sweeper's config groups: `hydra/sweeper: gan_optuna`, with `hydra/sweeper/sampler`
(tpe, random) and `hydra/sweeper/pruner` (none, median, halving, threshold).

No `from __future__ import annotations`: Hydra imports plugin modules outside sys.modules,
where dataclasses cannot resolve string annotations."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TPE:
    """Every choice stated, so an Optuna upgrade changes nothing silently: Optuna 5 made
    multivariate TPE with constant liar its default (Optuna 4: independent TPE, no liar); we
    chose the same on every Optuna >= 4 (docs/search.md#the-sampler-and-pruner-stated)."""
    _target_: str = "optuna.samplers.TPESampler"
    seed: Any = None               # offset by the trial number (workers draw different knobs)
    n_startup_trials: int = 10     # random trials before TPE models the space
    n_ei_candidates: int = 24      # candidates drawn per suggestion
    multivariate: bool = True      # one joint density over the knobs (lr_g with lr_d), not one
    #                                per knob
    group: bool = False            # true: a conditional space (trick knobs) split into groups
    # Running trials count as if they had the worst value seen, so workers on one journal (or
    # n_jobs > 1) do not all try the same region; no effect while no other trial runs.
    constant_liar: bool = True


@dataclass
class Random:
    """Uniform draws: the baseline TPE has to beat."""
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Any = None


@dataclass
class NoPruning:
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class Median:
    """Stop a trial whose value at a step is worse than the median of the other trials'."""
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 4      # trials that finish before any is pruned
    n_warmup_steps: int = 0        # steps (evaluations x seeds) of a trial never pruned
    interval_steps: int = 1
    n_min_trials: int = 1          # trials reported at a step before it can prune there


@dataclass
class Halving:
    """Asynchronous successive halving: at rungs min_resource * reduction_factor^r steps, keep
    the best 1 / reduction_factor of the trials that reached the rung."""
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"
    reduction_factor: int = 3
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


@dataclass
class Threshold:
    """Stop a trial once its value leaves [lower, upper] (e.g. upper: 300 for a val/fid that
    says the run collapsed)."""
    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: Any = None
    upper: Any = None
    n_warmup_steps: int = 0


@dataclass
class GanOptunaSweeperConf:
    _target_: str = "hydra_plugins.gan_optuna_sweeper.sweeper.GanOptunaSweeper"
    _recursive_: bool = False      # the sampler and pruner stay configs (seeded per trial)
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "none"}])
    sampler: Any = MISSING         # from hydra/sweeper/sampler (None here would override it)
    pruner: Any = MISSING          # from hydra/sweeper/pruner
    direction: str = "minimize"
    # null: <sweep dir>/optuna.journal. A path: a journal file there (on a disk every worker
    # sees). A URL (sqlite:///..., postgresql://...): that database.
    storage: Any = None
    study_name: str = "gan"
    n_trials: int = 20             # trials this command runs (each worker runs its own n_trials)
    n_jobs: int = 1                # trials launched together per round (a parallel launcher)
    max_trials: Any = None         # stop asking once the study holds this many trials
    # A RUNNING trial with no heartbeat for this many seconds lost its worker (killed, node
    # gone): it is failed and its knobs queued again (gan/sweeps/stale.py). null: never.
    stale_after: Any = 600
    params: Any = None             # the search space: key: choice(...) | interval(...) | ...
    # "module.function": called per trial with (config, trial) after the flat space, to ask
    # knobs that exist only for some values of others (gan.sweeps.search.trick_knobs).
    custom_search_space: Any = None


store = ConfigStore.instance()
store.store(group="hydra/sweeper", name="gan_optuna", node=GanOptunaSweeperConf,
            provider="gan_optuna_sweeper")
for name, node in (("tpe", TPE), ("random", Random)):
    store.store(group="hydra/sweeper/sampler", name=name, node=node,
                provider="gan_optuna_sweeper")
for name, node in (("none", NoPruning), ("median", Median), ("halving", Halving),
                   ("threshold", Threshold)):
    store.store(group="hydra/sweeper/pruner", name=name, node=node,
                provider="gan_optuna_sweeper")
