"""Feature extractors per image spec, chosen by `metrics.extractor=` (not by dataset name).

Every score but the pixel statistics lives in an extractor's feature space, and an extractor
takes one image shape. `auto` (the default) takes the one the data module declares
(`ImageDataModule.extractor`: the shipped digit classifier for MNIST, the Fashion one for
Fashion-MNIST, none for fake or folder data); a name picks one; `null` none. A model whose
images the extractor cannot read is refused in one line naming both shapes. Without an
extractor a run still writes metrics.json: the pixel statistics, and the scores that are
absent, each with why (`absent`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from gan.io.spec import ImageSpec


@dataclass(frozen=True)
class Extractor:
    """A feature extractor: `build()` gives the network (`features_and_logits(images)` and
    `num_features`; None: the shipped classifier of that name), `weights` the shipped
    classifier whose sha256 stamps its values, `modes`: its classes are Stacked-MNIST-style
    modes (metrics.json adds `modes` and `mode_kl`)."""

    name: str
    shape: tuple[int, int, int]  # the images it reads: (C, H, W)
    about: str
    build: Callable[[], nn.Module] | None = None
    weights: str | None = None
    modes: bool = False


def _per_channel_digits() -> nn.Module:
    from gan.metrics.classifier import load_classifier
    from gan.metrics.modes import PerChannelDigits

    return PerChannelDigits(load_classifier("mnist"))


EXTRACTORS = {
    "mnist": Extractor("mnist", (1, 28, 28), "the shipped MNIST digit classifier (gan/assets)"),
    "fashion_mnist": Extractor("fashion_mnist", (1, 28, 28),
                               "the shipped Fashion-MNIST classifier (gan/assets)"),
    "stacked_mnist": Extractor("stacked_mnist", (3, 28, 28),
                               "the MNIST classifier per channel: 1,000 modes (gan/metrics/"
                               "modes.py)", build=_per_channel_digits, weights="mnist",
                               modes=True),
}


def load(name: str) -> nn.Module:
    """The extractor's network: `features_and_logits(images)` and `num_features`."""
    from gan.metrics.classifier import load_classifier

    extractor = EXTRACTORS[name]
    return extractor.build() if extractor.build is not None else load_classifier(name)


def digest(name: str) -> str:
    """What a value is relative to: the weights' registered sha256 (an extractor built on a
    shipped classifier has that one's; its name, in the stamp beside it, tells them apart)."""
    from gan.metrics.classifier import extractor_id

    return extractor_id(EXTRACTORS[name].weights or name)

# What an extractor's features give, and so what is absent without one.
FEATURE_SCORES = ("fid", "kid", "kid_std", "is", "precision", "recall", "density", "coverage",
                  "classes_covered", "class_kl", "min_class_share")


def listing() -> str:
    return ", ".join(f"{e.name} ({'x'.join(map(str, e.shape))})" for e in EXTRACTORS.values())


def resolve(name: str | None, declared: str | None, key: str = "metrics.extractor") -> str | None:
    """The extractor a run uses: `auto` -> the data's declared one (or none)."""
    if name == "auto":
        return declared
    if name is not None and name not in EXTRACTORS:
        raise ValueError(f"{key}={name} is unknown; have: {listing()}, auto, null")
    return name


def check_fits(name: str, spec: ImageSpec, key: str = "metrics.extractor") -> None:
    shape = EXTRACTORS[name].shape
    if tuple(spec.shape) != tuple(shape):
        raise ValueError(f"{key}={name} reads {'x'.join(map(str, shape))} images, "
                         f"but the model draws {spec.shape_text}: choose another "
                         f"(have: {listing()}) or {key}=null")


def absent(name: str | None, spec: ImageSpec, reason: str | None = None) -> dict[str, str]:
    """The feature scores a run without an extractor cannot give, each with why."""
    why = reason or (f"no feature extractor for {spec.shape_text} images (metrics.extractor="
                     f"{name}; have: {listing()})")
    return {key: why for key in FEATURE_SCORES}


@torch.no_grad()
def pixel_stats(fake: torch.Tensor, real: torch.Tensor | None = None) -> dict[str, float]:
    """What needs no extractor: the samples' pixel mean and spread, and against real images
    (when the data has some) the gaps to theirs, per channel averaged."""
    fake = fake.float()
    out = {"pixel_mean": fake.mean().item(), "pixel_std": fake.std().item()}
    if real is not None and len(real):
        real = real.float() / 127.5 - 1 if real.dtype == torch.uint8 else real.float()
        dims = (0, 2, 3)
        out["pixel_mean_gap"] = (fake.mean(dims) - real.mean(dims)).abs().mean().item()
        out["pixel_std_ratio"] = (fake.std(dims) / real.std(dims).clamp(min=1e-6)).mean().item()
    return out
