"""FreezeD (Mo et al. 2020): keep D's first layers frozen when fine-tuning from `init_from`."""

from __future__ import annotations

from torch import nn

from gan.core.trick import Trick
from gan.networks.layers import WEIGHT_LAYERS


def layers_in_order(net: nn.Module) -> list[list[nn.Module]]:
    """D's layers in registration order: each conv/linear/embedding starts a layer, and
    parametrised modules after it (its normalisation) belong to it."""
    layers: list[list[nn.Module]] = []
    for m in net.modules():
        if isinstance(m, WEIGHT_LAYERS):
            layers.append([m])
        elif layers and any(True for _ in m.parameters(recurse=False)):
            layers[-1].append(m)
    return layers


class FreezeD(Trick):
    """FreezeD (Mo et al. 2020): when fine-tuning a pretrained GAN (init_from=...), freeze D's
    first `layers` layers (its low-level feature extractor) and train only the rest, which
    keeps D from overfitting a small target set. Layers count conv/linear weights in
    registration order, each with the normalisation after it. Set in `setup`, before the
    optimizers; Lightning's optimizer toggling restores requires_grad=False after each step."""

    def __init__(self, layers: int = 1):
        if layers < 1:
            raise ValueError(f"tricks.freeze_d.layers must be >= 1, got {layers}")
        self.layers = layers

    def setup(self, trainer, pl_module, stage):
        layers = layers_in_order(pl_module.discriminator)
        if self.layers >= len(layers):
            raise ValueError(
                f"tricks.freeze_d.layers={self.layers} would freeze all of D, which has "
                f"{len(layers)} layers; choose at most {len(layers) - 1}")
        for layer in layers[: self.layers]:
            for m in layer:
                m.requires_grad_(False)
