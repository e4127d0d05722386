"""The search loop behind `python -m gan.train -m hparams_search=<name>` (the Hydra sweeper in
hydra_plugins/gan_optuna_sweeper calls `Search.run`).

Ask and tell on a stored study: each round asks `n_jobs` trials, turns each into its jobs (one
per seed), launches them with the configured launcher, and tells each trial its outcome
(gan/sweeps/trials.py). The study is created or loaded by name, so the same command again
resumes it, and commands started in parallel on the same storage feed one study: Optuna gives
each `ask()` a trial of its own.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from gan.io.config import build
from gan.sweeps.search import CONDITIONAL, poisoned
from gan.sweeps.space import parse_space
from gan.sweeps.stale import Heartbeat, retry_stale
from gan.sweeps.storage import open_storage
from gan.sweeps.trials import job_overrides, seed_result, trial_outcome

log = logging.getLogger(__name__)


@dataclass
class Search:
    storage: str                      # storage_url(): a URL or an absolute journal path
    study_name: str
    direction: str
    n_trials: int                     # trials this command runs
    n_jobs: int                       # trials launched together per round
    sampler: DictConfig               # `_target_` node; seeded per trial (see `_sampler`)
    pruner: DictConfig | None
    params: dict[str, Any] | None
    seeds: int = 1
    first_seed: int = 0
    statistic: str = "mean"
    max_trials: int | None = None     # the study's total: stop asking once it holds that many
    conditional: Any = None           # callable(config, trial): knobs asked after the flat space
    # seconds without a heartbeat after which a RUNNING trial's worker is taken for dead
    # (gan/sweeps/stale.py); None: never
    stale_after: float | None = 600.0
    counts: collections.Counter = field(default_factory=collections.Counter)

    def __post_init__(self):
        if self.stale_after is not None and not self.stale_after > 0:
            raise ValueError(f"hydra.sweeper.stale_after must be seconds > 0 or null, got "
                             f"{self.stale_after}")

    def create_study(self) -> optuna.Study:
        return optuna.create_study(
            study_name=self.study_name, storage=open_storage(self.storage),
            sampler=self._sampler(0), pruner=build(self.pruner) if self.pruner else None,
            direction=self.direction, load_if_exists=True)

    def _sampler(self, number: int) -> optuna.samplers.BaseSampler:
        """The sampler for trial `number`, its seed offset by the number: workers started
        together share the config's seed, and would otherwise draw the same knobs."""
        seed = self.sampler.get("seed")
        return build(self.sampler, **({} if seed is None else {"seed": seed + number}))

    def ask(self, study: optuna.Study, space: dict, fixed: dict, config: DictConfig):
        trial = study.ask()
        # A queued trial whose values the space cannot hold (queued by hand, or before the
        # space changed): failed with its reason on first contact, and the next one asked.
        while (why := poisoned(trial, {**space, **{k: d for k, d in CONDITIONAL.values()}})):
            trial.set_user_attr("outcome", f"not run: {why}")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.counts["FAIL"] += 1
            log.error("trial %d not run, failed: %s", trial.number, why)
            trial = study.ask()
        study.sampler = self._sampler(trial.number)
        for name, distribution in space.items():
            trial._suggest(name, distribution)
        if self.conditional is not None:
            self.conditional(config, trial)
        params = {**trial.params, **fixed}
        ids = {"storage": f"'{self.storage}'", "study_name": self.study_name,
               "trial": trial.number}
        return trial, job_overrides(params, ids, self.seeds, self.first_seed)

    def _room(self, study: optuna.Study, done: int) -> int:
        left = self.n_trials - done
        if self.max_trials is not None:
            left = min(left, self.max_trials - len(study.get_trials(deepcopy=False)))
        return max(0, min(self.n_jobs, left))

    def _retried(self, study: optuna.Study, done: int) -> int:
        """`_room`, after dead workers' trials are failed and queued again: a resumed search
        (or any worker's next round) measures what a killed one left unfinished."""
        retry_stale(study, self.stale_after)
        return self._room(study, done)

    def heartbeat_interval(self) -> float | None:
        # a few beats per `stale_after`, so one late stamp never makes a live trial stale
        return None if self.stale_after is None else min(60.0, self.stale_after / 4)

    def run(self, launcher, arguments: list[str], config: DictConfig) -> optuna.Study:
        space, fixed = parse_space(self.params, arguments)
        self.first_seed = int(fixed.pop("seed", self.first_seed))
        study = self.create_study()
        log.info("study %s in %s: %d trial(s) there; %d to run, %d at a time, %d seed(s) each",
                 self.study_name, self.storage, len(study.trials), self.n_trials, self.n_jobs,
                 self.seeds)
        done, job_idx = 0, 0
        while (batch := self._retried(study, done)) > 0:
            asked = [self.ask(study, space, fixed, config) for _ in range(batch)]
            returns = self.launch(launcher, asked, job_idx)
            job_idx += len(returns)
            for i, (trial, _) in enumerate(asked):
                seeds = returns[i * self.seeds:(i + 1) * self.seeds]
                self.tell(study, trial, [seed_result(r) for r in seeds])
            done += batch
        self.summarise(study, Path(config.hydra.sweep.dir))
        return study

    def launch(self, launcher, asked: list, job_idx: int) -> list:
        """The job returns of a round. A job the launcher cannot even compose (a knob's value
        names a config that does not exist) fails its trials, not the search: the round's
        jobs are launched again one trial at a time, and a trial that still cannot start
        gets no return (seed_result: failed)."""
        jobs = [job for _, trial_jobs in asked for job in trial_jobs]
        try:
            with Heartbeat([trial for trial, _ in asked], self.heartbeat_interval()):
                return list(launcher.launch(jobs, initial_job_idx=job_idx))
        except Exception as err:  # noqa: BLE001 (Hydra's composition errors vary)
            if len(asked) == 1:
                first = (str(err).strip().splitlines() or [""])[0]
                log.error("trial %d could not start: %s: %s", asked[0][0].number,
                          type(err).__name__, first)
                return [None] * len(jobs)
        returns: list = []
        for one in asked:
            returns += self.launch(launcher, [one], job_idx + len(returns))
        return returns

    def tell(self, study: optuna.Study, trial: optuna.Trial, results: list) -> None:
        state, value, note = trial_outcome(results, self.statistic)
        self.counts[state.name] += 1
        trial.set_user_attr("outcome", note)
        study.tell(trial, value, state=state)
        log.info("trial %d: %s", trial.number, note)

    def summarise(self, study: optuna.Study, sweep_dir: Path) -> None:
        """Log this command's and the study's counts and best trial; write them to
        `<sweep dir>/optimization_results.yaml`."""
        states = collections.Counter(t.state.name for t in study.get_trials(deepcopy=False))
        result: dict[str, Any] = {"name": "optuna", "study_name": self.study_name,
                                  "storage": self.storage, "this_run": dict(self.counts),
                                  "study": dict(states)}
        if states.get("COMPLETE"):
            best = study.best_trial
            result.update(best_trial=best.number, best_value=best.value,
                          best_params=best.params)
            log.info("best trial %d: value %.4g with %s", best.number, best.value, best.params)
        log.info("this run: %s; the study: %s", dict(self.counts), dict(states))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(result), sweep_dir / "optimization_results.yaml")
