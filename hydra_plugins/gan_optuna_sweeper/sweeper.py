"""The Hydra side of the search: read the config, make a launcher, run gan.sweeps' Search."""

from __future__ import annotations

from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

# Registers the config groups when Hydra imports this plugin.
from hydra_plugins.gan_optuna_sweeper import config as _config  # noqa: F401


class GanOptunaSweeper(Sweeper):
    def __init__(self, sampler: Any, pruner: Any, direction: str, storage: str | None,
                 study_name: str, n_trials: int, n_jobs: int, max_trials: int | None,
                 stale_after: float | None, params: DictConfig | None,
                 custom_search_space: str | None) -> None:
        self.settings = dict(sampler=sampler, pruner=pruner, direction=direction,
                             n_trials=n_trials, n_jobs=n_jobs, max_trials=max_trials,
                             stale_after=None if stale_after is None else float(stale_after),
                             study_name=study_name)
        self.storage = storage
        self.params = OmegaConf.to_container(params) if params else None
        self.custom_search_space = custom_search_space

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)

    def sweep(self, arguments: list[str]) -> Any:
        from gan.sweeps.optuna_sweep import Search
        from gan.sweeps.storage import storage_url
        from gan.sweeps.trials import check_statistic

        search_cfg = OmegaConf.select(self.config, "hparams_search") or {}
        search = Search(
            storage=storage_url(self.storage, self.config.hydra.sweep.dir),
            params=self.params,
            seeds=int(search_cfg.get("seeds") or 1),
            first_seed=int(self.config.get("seed") or 0),
            statistic=check_statistic(search_cfg.get("statistic") or "mean"),
            conditional=get_method(self.custom_search_space) if self.custom_search_space
            else None,
            **self.settings)
        from gan.io.usage import UsageError, exit_for

        try:
            return search.run(self.launcher, arguments, self.config)
        except UsageError as err:  # a corrupt journal: one line naming it, not a traceback
            raise exit_for("train", err, debug=False) from None
