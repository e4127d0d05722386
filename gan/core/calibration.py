"""Whether a run's D output can be read as a calibrated logit, which post-hoc samplers that
read D (discriminator rejection sampling, `sampler=drs`) assume.

DRS (Azadi et al. 2019) accepts a fake with a probability built from exp(D~(x) - D~*): that is
p_data / p_g only where D~ is the logit of the optimal BCE discriminator. A hinge, least-squares,
Wasserstein or relativistic critic's output is a score on another scale, and rejection on it is
a heuristic with no density ratio behind it, so such a run is refused in one line, before
training (gan/runs/checks.py) and before drawing from a checkpoint (gan/sampling/sampler.py).

Why refuse rather than calibrate: the DRS paper calibrates by fine-tuning D with BCE on held-out
data; the lighter Platt scaling (a logistic fit a * score + b on real vs fake) also needs held-out
real images inside the sampler, which its contract (`draw(sample, ..., critic)`) does not carry,
and the only held-out split here is the one the metrics score against. A loss may still declare
`calibrated_logit = True` once it brings its own calibration.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from gan.io.legacy import current_target


def target_class(node) -> type | None:
    """The class a config node's `_target_` names (None without one, or if it does not import)."""
    target = (node or {}).get("_target_") if isinstance(node, Mapping) else None
    if not target:
        return None
    module, _, name = current_target(str(target)).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def reads_calibrated_logit(sampler: type | object | None) -> bool:
    """Whether a post-hoc sampler reads D's output as a calibrated logit (every sampler that
    reads D does, unless it says otherwise)."""
    if sampler is None:
        return False
    return bool(getattr(sampler, "needs_calibrated_logit", getattr(sampler, "needs_critic", False)))


def _overrides(cls: type, hook: str) -> bool:
    from gan.core.trick import Trick

    return isinstance(cls, type) and issubclass(cls, Trick) and (
        getattr(cls, hook) is not getattr(Trick, hook))


def calibration_refusal(config: Mapping, sampler=None, loss_name: str | None = None,
                        sampler_name: str = "drs") -> str | None:
    """One line saying why `sampler` (default: the config's `sampler` node) cannot read this
    run's D, or None. `config`: a composed or stored run config (loss, tricks)."""
    sampler = sampler if sampler is not None else target_class(config.get("sampler"))
    if not reads_calibrated_logit(sampler):
        return None
    loss = target_class(config.get("loss"))
    head = f"sampler={sampler_name} needs D's output to be a calibrated logit"
    if loss is not None and not getattr(loss, "calibrated_logit", False):
        name = loss_name or loss.__name__.lower()
        return (f"{head}; loss={name}'s is not ({loss.__module__}.{loss.__name__} trains a "
                f"score, not log p_data/p_g, and DRS would accept on raw scores): train with "
                f"loss=bce, or sample with sampler=plain or truncation")
    tricks = {key: target_class(node) for key, node in (config.get("tricks") or {}).items()}
    for key, cls in tricks.items():
        if _overrides(cls, "real_target"):  # label smoothing: D's optimum is no longer the ratio
            return (f"{head}; tricks.{key} changes D's real target, so D's optimum is not "
                    f"log p_data/p_g: leave {key} out, or sample with sampler=plain or truncation")
        if not getattr(cls, "scores_single_images", True):  # PacGAN: D judges packs
            return (f"{head} of single images; tricks.{key}'s D scores packs of images: leave "
                    f"{key} out, or sample with sampler=plain or truncation")
    return None
