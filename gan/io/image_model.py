"""The one model contract: a trained image model, whatever its family.

Every consumer (the metrics callback, grids, walks, `gan.generate`, `gan.evaluate`,
`gan.export`, `gan.project`) takes an `ImageModel` and nothing else: a GAN LightningModule
during training, the same GAN restored from a checkpoint afterwards, or any other family
(`tests/toy_family.py` is a 50-line one). A family that draws images needs only `spec`, `draw`
and `describe`; the optional members unlock more:

- `latent_dim` and `decode(z, labels)`: latent walks (slerp strips) and projection;
- `critic(images, labels)`: D's logits, for post-hoc samplers that read D;
- `export_module()`: an `nn.Module` `(z, labels) -> images` for ONNX/TorchScript export and
  for `gan.project` (which differentiates through it).

A checkpoint names its family under `image_model.family`; `load_image_model` dispatches on it.
A family is a registered name (`FAMILIES`) or a `module:callable` path, so a new family needs
no edit outside its own files. Checkpoints written before the contract carry no family and
are GANs.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from gan.io.spec import ImageSpec
from gan.io.usage import UsageError

# family name -> "module:callable(checkpoint dict, path, device) -> ImageModel"
FAMILIES = {"gan": "gan.sampling.sampler:Sampler.from_checkpoint"}

CKPT_KEY = "image_model"  # {"family": ..., "spec": ImageSpec.to_dict(), "describe": {...}}


@runtime_checkable
class ImageModel(Protocol):
    """Draws images of `spec`: (N, C, H, W) float in [-1, 1] on the CPU."""

    @property
    def spec(self) -> ImageSpec: ...

    def draw(self, n: int, labels: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        """n images; image i for `labels[i]` when given, else labels drawn from the label
        space (`spec.labels.sample(n, seed)`). The same seed draws the same images."""

    def describe(self) -> dict:
        """What drew the images (family, sampler and its settings, step): stamped into
        metrics.json and checkpoints."""


def stamp(model: ImageModel, family: str) -> dict:
    """What a checkpoint stores under `image_model`."""
    return {"family": family, "spec": model.spec.to_dict(), "describe": model.describe()}


def family_of(ckpt: dict) -> str:
    return (ckpt.get(CKPT_KEY) or {}).get("family", "gan")


def _resolve(family: str):
    target = FAMILIES.get(family, family)
    if ":" not in target:
        raise UsageError(f"the checkpoint's model family {family!r} is unknown (known: "
                         f"{', '.join(FAMILIES)}, or a 'module:callable' path)")
    module, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise UsageError(f"the checkpoint's model family {family!r} cannot be loaded "
                         f"({type(err).__name__}: {err})") from None
    return obj


def load_image_model(path: str | Path, device: str = "cpu", key: str = "ckpt_path"):
    """The one loader: the trained model a checkpoint holds, as an `ImageModel`."""
    from gan.io.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path, key)
    return _resolve(family_of(ckpt))(ckpt, Path(path), device)
