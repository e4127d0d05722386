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


def build(node: DictConfig, **kwargs: Any) -> Any:
    """Every `_target_` goes through here (Hydra 1.4 will want an allow-list: add it here)."""
    return instantiate(node, **kwargs)
