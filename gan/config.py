"""Where configs live, and the one place objects are built from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

# Absolute, so configs resolve the same under `python -m`, console scripts and tests.
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def build(node: DictConfig, **kwargs: Any) -> Any:
    """Every `_target_` goes through here (Hydra 1.4 will want an allow-list: add it here)."""
    return instantiate(node, **kwargs)


def short_dirname(overrides: str, limit: int = 120) -> str:
    """A sweep job's folder name from its overrides, cut to `limit` characters (file names stop
    at 255 bytes) with a hash of the whole so names stay unique; index.tsv keeps them all."""
    name = overrides.replace("/", "_")
    if len(name) <= limit:
        return name
    import hashlib

    return f"{name[:limit]}~{hashlib.sha1(name.encode()).hexdigest()[:8]}"


if not OmegaConf.has_resolver("short_dirname"):
    OmegaConf.register_new_resolver("short_dirname", short_dirname)
