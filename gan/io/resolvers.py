"""The resolvers of conf/ (`${short_dirname:...}` names sweep job folders; `${trick_on:...}`
resolves configs stored before 2026-12-07). Registered on import: gan/io/config.py, which every
composition goes through, imports this module."""

from __future__ import annotations

import hashlib

from omegaconf import DictConfig, OmegaConf

from gan.io.artefacts import swept_keys

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
