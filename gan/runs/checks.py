"""Refuse an untrainable config at the start, with the key to change, in one line.

`check_config(cfg)` runs before anything is built or written. Errors that only the built objects
can see (a loss refusing a critic, a batch larger than the data) are raised by those objects as
ValueError/FileNotFoundError; `gan.train` reports any of them raised before the first training
step as the same kind of one line, without a traceback (`usage_error`).
"""

from __future__ import annotations

import math
import numbers

from omegaconf import DictConfig, ListConfig, OmegaConf

from gan.io.usage import UsageError


def _number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_lr(cfg: DictConfig) -> None:
    optim = cfg.get("optim") or {}
    for role, short in (("generator", "lr_g"), ("discriminator", "lr_d")):
        node = optim.get(role)
        if node is None or "lr" not in node:
            continue
        key = f"optim.{short}" if short in optim else f"optim.{role}.lr"
        value = node.lr
        if not _number(value) or not math.isfinite(value) or value <= 0:
            raise UsageError(f"{key}={value} must be a positive number (a learning rate), "
                             f"e.g. {key}=2e-4")


def _check_latent_dim(cfg: DictConfig) -> None:
    model = cfg.get("model") or {}
    if "latent_dim" in model:
        key, value = "model.latent_dim", model.latent_dim
    elif "latent_dim" in (model.get("generator") or {}):
        key, value = "model.generator.latent_dim", model.generator.latent_dim
    else:
        return
    if not _number(value) or value != int(value) or value < 1:
        raise UsageError(f"{key}={value} must be an integer >= 1 (the noise size), e.g. {key}=100")


def _device_count(devices) -> int | None:
    """How many processes `trainer.devices` asks for; None for 'auto' / -1 (Lightning decides)."""
    if isinstance(devices, str):
        devices = devices.strip()
        if "," in devices:
            return len([d for d in devices.split(",") if d.strip()])
        if not devices.lstrip("-").isdigit():
            return None
        devices = int(devices)
    if isinstance(devices, int) and not isinstance(devices, bool):
        return devices if devices >= 0 else None
    try:
        return len(devices)
    except TypeError:
        return None


def _check_devices(cfg: DictConfig) -> None:
    trainer = cfg.get("trainer") or {}
    count = _device_count(trainer.get("devices", 1))
    strategy = trainer.get("strategy", "auto")
    # G and D each run a backward alone: plain DDP fails on the unused parameters (Lightning
    # #20328), so more than one device needs a find_unused strategy, which trainer=ddp sets.
    # A strategy given as an object (`_target_`) is the user's own choice: let it through.
    if count is not None and count > 1 and isinstance(strategy, str) and (
            "find_unused_parameters_true" not in strategy):
        raise UsageError(
            f"trainer.devices={trainer.get('devices')} needs trainer=ddp (strategy "
            f"ddp_find_unused_parameters_true; got trainer.strategy={strategy}): a GAN step "
            f"leaves G or D unused, which plain DDP refuses")


def _check_accelerator(cfg: DictConfig) -> None:
    import torch

    accelerator = str((cfg.get("trainer") or {}).get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UsageError(f"trainer.accelerator={accelerator}: this machine has no CUDA device; "
                         f"use trainer.accelerator=cpu (or auto)")


def _config_keys(node, prefix: str = "") -> set[str]:
    """Every key of a config, leaves and the nodes above them (`optim`, `optim.lr_g`, ...)."""
    keys = {prefix} if prefix else set()
    if isinstance(node, dict):
        for key, value in node.items():
            keys |= _config_keys(value, f"{prefix}.{key}" if prefix else str(key))
    return keys


def _check_resume_allow(cfg: DictConfig) -> None:
    allow = (cfg.get("resume") or {}).get("allow")
    if allow is None:
        return
    if not isinstance(allow, ListConfig):
        raise UsageError(f"resume.allow={allow} must be a list of config keys, e.g. "
                         f"'resume.allow=[optim.lr_g,optim.lr_d]'")
    known = _config_keys(OmegaConf.to_container(cfg, resolve=False))
    unknown = [str(k) for k in allow if str(k).rstrip(".") not in known]
    if unknown:
        raise UsageError(f"resume.allow=[{','.join(map(str, allow))}] names "
                         f"{', '.join(unknown)}, not a key of this config (a typo?); e.g. "
                         f"'resume.allow=[optim.lr_g]'")


def _choice(group: str) -> str | None:
    """The option picked for a config group (`loss=hinge` -> hinge) where Hydra knows it."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    choice = HydraConfig.get().runtime.choices.get(group)
    return None if choice in (None, "???") or "/" in str(choice) else str(choice)


def _check_sampler(cfg: DictConfig) -> None:
    """`+sampler=drs` reads D's output as a calibrated logit: refuse a run whose D's is not
    (gan/core/calibration.py), before it trains for a sampler that would read raw scores."""
    from gan.core.calibration import calibration_refusal

    if cfg.get("sampler") is None:
        return
    why = calibration_refusal(cfg, loss_name=_choice("loss"),
                              sampler_name=_choice("sampler") or "drs")
    if why is not None:
        raise UsageError(why)


def check_config(cfg: DictConfig) -> None:
    """Raise UsageError for a config that cannot train."""
    _check_sampler(cfg)
    _check_resume_allow(cfg)
    _check_latent_dim(cfg)
    _check_lr(cfg)
    _check_devices(cfg)
    _check_accelerator(cfg)
