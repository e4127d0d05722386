"""Where configs live, and the one place objects are built from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

# Registers the `${short_dirname:...}` resolver of conf/hydra/default.yaml (job folder names).
from gan.sweep import short_dirname  # noqa: F401

# Absolute, so configs resolve the same under `python -m`, console scripts and tests.
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def compose_train(overrides: list[str], run_dir: str | Path) -> DictConfig:
    """conf/train.yaml with `overrides`, as `python -m gan.train` would compose it in `run_dir`
    (benchmarks and tests train without the @hydra.main entry point)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


def build(node: DictConfig, **kwargs: Any) -> Any:
    """Every `_target_` goes through here (Hydra 1.4 will want an allow-list: add it here)."""
    return instantiate(node, **kwargs)
