"""Training tricks, one small class each.

A trick is a Lightning `Callback` (so it also gets every Lightning hook, its own `state_dict` in
checkpoints, and `setup` before the optimizers and the DDP wrap) plus the hooks the training step
folds over. Each hook is the identity (or nothing) here; a trick overrides the ones it needs:

- `d_input(images, step)`: every image D sees, real or fake, in D and G steps alike.
- `real_target(target, step)`: the target for real images in losses that use targets.
- `d_penalty(critic, real, fake, step)`: a term added to D's loss.
- `generator_labels(labels)`: the labels G is given in training (the real batch's by default).
- `g_penalty(fake, labels, step)`: a term added to G's loss (`labels`: what G was given).
- `g_parameters()`: weights of the trick's own that G's optimizer trains with G.
- `sampling_generator(generator)`: the generator grids, generation and metrics use.

`step` counts D updates in the D hooks and G updates in `g_penalty`. Adding a trick is one
class (here, or in a module named after its math) plus one YAML in conf/tricks/.
"""

from __future__ import annotations

import copy

import lightning as L
import torch
from torch import nn


class Trick(L.Callback):
    double_backward = False  # True where `d_penalty` differentiates D's input gradient (compile)

    def d_input(self, images: torch.Tensor, step: int) -> torch.Tensor:
        return images

    def real_target(self, target: float, step: int) -> float:
        return target

    def d_penalty(self, critic, real, fake, step: int) -> torch.Tensor | float:
        return 0.0

    def generator_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return labels

    def g_penalty(self, fake, labels, step: int) -> torch.Tensor | float:
        return 0.0

    def g_parameters(self) -> list[nn.Parameter]:
        return []

    def sampling_generator(self, generator: torch.nn.Module) -> torch.nn.Module:
        return generator


class LabelSmoothing(Trick):
    """One-sided label smoothing (Salimans et al. 2016): real targets `real`, fakes stay 0.

    Smoothing the fake targets too would reward D for leaving fakes near the data, so only the
    real side moves."""

    def __init__(self, real: float = 0.9):
        if not 0.0 < real <= 1.0:
            raise ValueError(f"tricks.label_smoothing.real must be in (0, 1], got {real}")
        self.real = real

    def setup(self, trainer, pl_module, stage):
        if not pl_module.loss.uses_targets:
            raise ValueError(
                f"tricks=[label_smoothing] changes the real target of a loss with targets "
                f"(bce, lsgan); {type(pl_module.loss).__name__} has none. Drop the trick or "
                f"choose loss=bce / loss=lsgan."
            )

    def real_target(self, target, step):
        return target * self.real


class InstanceNoise(Trick):
    """Gaussian instance noise on D's inputs (Sønderby et al. 2017; Arjovsky & Bottou 2017).

    Noise makes the real and fake distributions overlap, so D's gradient stays informative early
    on; sigma anneals linearly from `sigma` to 0 over `anneal_steps` D steps so it does not blur
    the final samples."""

    def __init__(self, sigma: float = 0.1, anneal_steps: int = 10_000):
        if sigma < 0 or anneal_steps < 1:
            raise ValueError("tricks.instance_noise needs sigma >= 0 and anneal_steps >= 1, "
                             f"got sigma={sigma}, anneal_steps={anneal_steps}")
        self.sigma, self.anneal_steps = sigma, anneal_steps

    def sigma_at(self, step: int) -> float:
        return self.sigma * max(0.0, 1.0 - step / self.anneal_steps)

    def d_input(self, images, step):
        sigma = self.sigma_at(step)
        return images + sigma * torch.randn_like(images) if sigma > 0 else images

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        pl_module.log("train/instance_noise_sigma", self.sigma_at(pl_module.d_step))


class EMA(Trick):
    """Exponential moving average of G's weights (Karras et al. 2018; Yazıcı et al. 2019):
    after each G step, `ema = decay * ema + (1 - decay) * G`. Grids, generation and metrics
    sample the average, which is smoother than the last iterate.

    The copy is registered as `pl_module.generator_ema` in `setup`, so checkpoints hold it under
    `generator_ema.` (gan.generate prefers those keys) and resuming restores it; it has no
    gradients and configure_optimizers never sees it. Buffers (BatchNorm running statistics) are
    copied, not averaged, as in StyleGAN2-ADA: averaged statistics would not match any weights.
    Before G step `start_step` the average just copies G (BigGAN's ema_start); `warmup` uses
    decay_t = min(decay, (1 + t) / (10 + t)) for t steps since the start, so early averages do
    not drag in the random initialisation."""

    def __init__(self, decay: float = 0.999, start_step: int = 0, warmup: bool = False):
        if not 0.0 <= decay < 1.0 or start_step < 0:
            raise ValueError(f"tricks.ema needs 0 <= decay < 1 and start_step >= 0, "
                             f"got decay={decay}, start_step={start_step}")
        self.decay, self.start_step, self.warmup = decay, start_step, warmup
        self.ema: torch.nn.Module | None = None
        self._seen_g_step = 0

    def setup(self, trainer, pl_module, stage):
        if getattr(pl_module, "generator_ema", None) is None:
            pl_module.generator_ema = copy.deepcopy(pl_module.generator).requires_grad_(False)
        self.ema = pl_module.generator_ema

    def decay_at(self, g_step: int) -> float:
        """The decay for the update after G step `g_step` (counted from 1); 0 means copy."""
        if g_step <= self.start_step:
            return 0.0
        t = g_step - self.start_step
        return min(self.decay, (1 + t) / (10 + t)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, generator: torch.nn.Module, decay: float) -> None:
        ema_params = dict(self.ema.named_parameters())
        for name, p in generator.named_parameters():
            ema_params[name].lerp_(p.detach(), 1.0 - decay)  # decay * ema + (1 - decay) * p
        ema_buffers = dict(self.ema.named_buffers())
        for name, b in generator.named_buffers():
            ema_buffers[name].copy_(b)

    def on_train_start(self, trainer, pl_module):
        self._seen_g_step = pl_module.g_step  # restored by now when resuming

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # With n_critic > 1 not every batch has a G step: update only after one.
        if pl_module.g_step != self._seen_g_step:
            self._seen_g_step = pl_module.g_step
            self.update(pl_module.generator, self.decay_at(pl_module.g_step))

    def sampling_generator(self, generator):
        return self.ema if self.ema is not None else generator


ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Mish, nn.PReLU)


class InsertedDropout(nn.Dropout):
    """nn.Dropout, marked as the trick's own so a second `setup` does not insert it twice."""


class DiscriminatorDropout(Trick):
    """Dropout after every hidden activation of D (Goodfellow et al. 2014 trained D with dropout;
    Srivastava et al. 2014). Each activation module becomes `Sequential(activation, Dropout(p))`
    in `setup`: after the non-linearity, so every hidden layer's output is dropped and the logit
    layer (no activation after it) is not; activations hold no weights, so checkpoint keys do
    not change and init_from/generate still match."""

    def __init__(self, p: float = 0.3):
        if not 0.0 < p < 1.0:
            raise ValueError(f"tricks.dropout.p must be in (0, 1), got {p}")
        self.p = p

    def setup(self, trainer, pl_module, stage):
        discriminator = pl_module.discriminator
        if any(isinstance(m, InsertedDropout) for m in discriminator.modules()):
            return  # setup ran before (fit after fit)
        targets = [(parent, name, child) for parent in discriminator.modules()
                   for name, child in parent.named_children() if isinstance(child, ACTIVATIONS)]
        if not targets:
            raise ValueError(
                f"tricks=[dropout] found no activation modules in {type(discriminator).__name__} "
                f"(it inserts dropout after nn.ReLU/LeakyReLU/... modules; a functional "
                f"activation in forward() cannot be found)")
        for parent, name, child in targets:
            setattr(parent, name, nn.Sequential(child, InsertedDropout(self.p)))


WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                 nn.ConvTranspose3d, nn.Linear, nn.Embedding)


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
