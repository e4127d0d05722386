"""Where configs live, and the one place objects are built from them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gan.io.artefacts import swept_keys

# Absolute, so configs resolve the same under `python -m`, console scripts and tests.
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


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


# Overrides that say how a job runs, not what it trains: never in a job folder's name. A
# study's `+study=` names its sweep dir already.
NOT_IN_NAMES = ("ckpt_path", "skip_done", "overwrite", "study")


def short_dirname(overrides: str, _root_: DictConfig | None = None, limit: int = 120) -> str:
    """A sweep job's folder name: the swept `key=value`s first, then the overrides every job
    shares, so the name is unique to the job's whole override set (a second sweep with another
    shared override never lands in the first one's folders). Cut to `limit` characters (file
    names stop at 255 bytes) with a hash of the whole so names stay unique."""
    name = overrides
    if _root_ is not None:
        swept = [k.lstrip("+~") for k in swept_keys(_root_.hydra.sweep.dir)]
        task = {o.lstrip("+~").split("=", 1)[0]: o.lstrip("+~")
                for o in _root_.hydra.overrides.task}
        # `+variant=x` sweeps are listed as `+variant` in swept_keys.txt: match without the `+`
        varying = [task[k] for k in swept if k in task]
        shared = [v for k, v in task.items() if k not in swept and k not in NOT_IN_NAMES]
        if varying or shared:
            name = ",".join(varying + shared)
    name = name.replace("/", "_")
    if len(name) <= limit:
        return name
    return f"{name[:limit]}~{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def trick_on(name: str, *, _root_: DictConfig) -> bool:
    """`${trick_on:self_cond}`: whether `tricks.<name>` is in the composed config. conf/ no
    longer uses it (conf/tricks/self_cond.yaml sets model.conditional itself); kept so that the
    .hydra/config.yaml of runs and sweeps written before, which say
    `model.conditional: ${trick_on:self_cond}`, still resolve (gan.report, resumes)."""
    tricks = OmegaConf.select(_root_, "tricks")
    return bool(tricks is not None and name in tricks and tricks[name] is not None)


# The `${short_dirname:...}` resolver of conf/hydra/default.yaml (job folder names): every
# entry point composes through this module, so the resolver exists wherever a config does.
if not OmegaConf.has_resolver("short_dirname"):
    OmegaConf.register_new_resolver("short_dirname", short_dirname)
if not OmegaConf.has_resolver("trick_on"):
    OmegaConf.register_new_resolver("trick_on", trick_on)
