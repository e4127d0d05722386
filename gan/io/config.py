"""Where configs live, and the one place objects are built from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from gan.io import resolvers  # noqa: F401  (registers conf/'s resolvers)
from gan.io.places import CONF_DIR  # noqa: F401  (re-exported: where conf/ is)


def compose_config(name: str, overrides: list[str] = (), run_dir: str | Path | None = None,
                   ) -> DictConfig:
    """conf/<name>.yaml with `overrides`, as `python -m gan.<entry>` would compose it; with
    `run_dir`, also as Hydra's run dir (${hydra:runtime.output_dir}), for code that trains or
    writes without the @hydra.main entry point (benchmarks, tests)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(name, overrides=list(overrides), return_hydra_config=run_dir is not None)
    if run_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
            cfg.hydra.job.num = 0
        HydraConfig.instance().set_config(cfg)
    return cfg


def compose_train(overrides: list[str], run_dir: str | Path) -> DictConfig:
    """conf/train.yaml with `overrides`, as `python -m gan.train` would compose it in `run_dir`."""
    return compose_config("train", overrides, run_dir)


def build(node: DictConfig, **kwargs: Any) -> Any:
    """Every `_target_` goes through here (Hydra 1.4 will want an allow-list: add it here)."""
    return instantiate(node, **kwargs)

