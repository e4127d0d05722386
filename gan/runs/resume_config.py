"""A resume that never lies about its config.

Resuming (`ckpt_path=`) restores weights, optimizer states and counters from the checkpoint,
so a changed learning rate would be silently overwritten by the optimizer state, while the run
folder records the new value. Here the run's config is compared with the checkpoint's:

- a difference in a key that decides training (optimizer, learning rates, loss, model, data,
  batch, tricks) is refused, in one line that lists the keys;
- the keys a resume changes on purpose go through and are logged: the budget, `max_epochs` /
  `max_steps`, and whatever `resume.allow=[optim.lr_g,...]` names; an allowed optimizer setting
  is written into the restored optimizer's param groups (`ApplyOptimizerSettings`), so it
  really takes effect.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import lightning as L
from omegaconf import DictConfig, OmegaConf

from gan.io.checkpoint import CheckpointError

log = logging.getLogger(__name__)

DECIDING = ("optim.", "loss.", "model.", "data.", "tricks.", "critic_norm")
# Where the data lives or how it is loaded does not change what is learned.
IGNORED = ("data.root", "data.download", "data.name", "data.num_workers", "data.on_device",
           "data.pin_memory", "data.persistent_workers")
ALWAYS_ALLOWED = ("budget.", "trainer.max_epochs", "trainer.max_steps")
# Keys added after checkpoints were written, at the value that trains as before they existed:
# a checkpoint without the key trained exactly so, and resumes (issue 29's levers).
ADDED_NEUTRAL = {"tricks.self_cond.first_recluster": None, "tricks.self_cond.restarts": 1,
                 "tricks.self_cond.reseed_empty": False, "tricks.self_cond.encoder_bn": "running",
                 "tricks.ema.bn_images": 0, "loss.r1_gamma": 0.0, "loss.r2_gamma": 0.0}
# Diagnostics: logged, never read by training.
DIAGNOSTIC = ("tricks.self_cond.purity_images",)
OPTIMIZERS = ("generator", "discriminator")  # the module's optimizers, in this order


def leaves(node, prefix: str = "") -> Iterable[tuple[str, object]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def _under(name: str, keys: Iterable[str]) -> bool:
    return any(name == k.rstrip(".") or name.startswith(k if k.endswith(".") else k + ".")
               for k in keys)


def source_key(name: str, raw: Mapping) -> str:
    """The key a leaf takes its value from: `optim.generator.lr` is `${..lr_g}` in the config,
    so `resume.allow=[optim.lr_g]` covers it."""
    node = raw
    for part in name.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if not (isinstance(node, str) and node.startswith("${") and node.endswith("}")):
        return name
    ref = node[2:-1]
    dots = len(ref) - len(ref.lstrip("."))
    if dots == 0 or ":" in ref:
        return ref if ":" not in ref else name
    parts = name.split(".")
    return ".".join([*parts[:len(parts) - dots], ref.lstrip(".")])


def compare(saved: Mapping, cfg: DictConfig) -> tuple[list[str], list[str], set[str]]:
    """(refused, applied, allowed optimizer roles): `key=<checkpoint> (checkpoint) vs <run>
    (this run)` for every differing leaf that decides training and is not allowed, and for
    every allowed one; and which optimizers (generator/discriminator) an allowed change
    touches."""
    current = OmegaConf.to_container(cfg, resolve=True)
    raw = OmegaConf.to_container(cfg, resolve=False)
    allow = [str(k) for k in ((cfg.get("resume") or {}).get("allow") or [])]
    old, new = dict(leaves(saved)), dict(leaves(current))
    refused, applied, roles = [], [], set()
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name, "<absent>"), new.get(name, "<absent>")
        if before == after or _under(name, IGNORED) or _under(name, DIAGNOSTIC) or \
                name.startswith(("hydra.", "resume.")):
            continue
        if before == "<absent>" and name in ADDED_NEUTRAL and after == ADDED_NEUTRAL[name]:
            continue
        line = f"{name}={before} (checkpoint) vs {after} (this run)"
        if _under(name, ALWAYS_ALLOWED) or _under(name, allow) or _under(
                source_key(name, raw), allow):
            applied.append(line)
            parts = name.split(".")
            if parts[0] == "optim" and len(parts) > 2 and parts[1] in OPTIMIZERS:
                roles.add(parts[1])
        elif _under(name, DECIDING):
            refused.append(line)
    return refused, applied, roles


def recipe_hint(refused: list[str]) -> str:
    """The likeliest cause, where one recipe explains the differences: a run from before the
    self-conditioned default (2026-12-02) has no `tricks.self_cond`; it resumes with the
    recipe it was trained with."""
    if any(line.startswith("tricks.self_cond._target_=<absent> (checkpoint)")
           for line in refused):
        return (" It was trained without self-conditioning, as the default before 2026-12-02 "
                "was: resume it with recipe=unconditional.")
    return ""


def check_resume(saved: Mapping, cfg: DictConfig) -> set[str]:
    """Refuse a resume whose config differs from the checkpoint's in a deciding key; log what
    it changes on purpose; return the optimizer roles whose settings must be re-applied."""
    refused, applied, roles = compare(saved, cfg)
    if refused:
        groups = sorted({line.split(".")[0].split("=")[0] for line in refused})
        what = "model" if groups == ["model"] else "config (" + ", ".join(groups) + ")"
        more = f" (+{len(refused) - 6} more)" if len(refused) > 6 else ""
        raise CheckpointError(
            f"ckpt_path={cfg.ckpt_path} was trained with another {what}: "
            f"{'; '.join(refused[:6])}{more}. A resume goes on with the checkpoint's settings: "
            f"run with them (its run dir's .hydra/config.yaml), or name the keys you change on "
            f"purpose in resume.allow=[...].{recipe_hint(refused)}")
    for line in applied:
        log.info("resume changes %s", line)
    return roles


class ApplyOptimizerSettings(L.Callback):
    """After Lightning restored the optimizer states (which carry the checkpoint's lr, betas
    ...), write this run's settings into their param groups, for the roles `resume.allow`
    changed."""

    def __init__(self, cfg: DictConfig, roles: set[str]):
        self.settings = {role: OmegaConf.to_container(cfg.optim[role], resolve=True)
                         for role in roles}

    def on_train_start(self, trainer, pl_module):
        for role, optimizer in zip(OPTIMIZERS, trainer.optimizers):
            for key, value in self.settings.get(role, {}).items():
                for group in optimizer.param_groups:
                    if key in group and not key.startswith("_"):
                        group[key] = tuple(value) if isinstance(group[key], tuple) else value
                        log.info("resume: %s optimizer %s = %s", role, key, value)
