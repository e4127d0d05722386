"""An exponential moving average of G's weights (Karras et al. 2018; Yazici et al. 2019): the
generator grids, metrics and `gan.generate` draw from."""

from __future__ import annotations

import copy

import torch

from gan.core.trick import Trick
from gan.networks.layers import standing_batchnorm


class EMA(Trick):
    """Exponential moving average of G's weights (Karras et al. 2018; Yazıcı et al. 2019):
    after each G step, `ema = decay * ema + (1 - decay) * G`. Grids, generation and metrics
    sample the average, which is smoother than the last iterate.

    The copy is the trick's state (gan/core/trick.py): checkpoints hold it under
    `trick_state.ema.` (gan.generate prefers those keys) and resuming restores it; it has no
    gradients and configure_optimizers never sees it. Buffers (BatchNorm running statistics) are
    copied, not averaged, as in StyleGAN2-ADA: averaged statistics would not match any weights.
    Before G step `start_step` the average just copies G (BigGAN's ema_start); `warmup` uses
    decay_t = min(decay, (1 + t) / (10 + t)) for t steps since the start, so early averages do
    not drag in the random initialisation.

    `bn_images=n` (> 0) re-estimates the average's BatchNorm statistics on n of its own samples
    before it is next used (BigGAN's "standing statistics"): G's running statistics belong to
    G's weights, not to the average's. The samples are seeded (the same z and labels every
    time) and never touch the training RNG; checkpoints hold the re-estimated statistics, so
    a restored model draws as the run's metrics did."""

    def __init__(self, decay: float = 0.999, start_step: int = 0, warmup: bool = False,
                 bn_images: int = 0):
        if not 0.0 <= decay < 1.0 or start_step < 0 or bn_images < 0:
            raise ValueError(f"tricks.ema needs 0 <= decay < 1, start_step >= 0 and "
                             f"bn_images >= 0, got decay={decay}, start_step={start_step}, "
                             f"bn_images={bn_images}")
        self.decay, self.start_step, self.warmup = decay, start_step, warmup
        self.bn_images = bn_images
        self.ema: torch.nn.Module | None = None
        self.module = None
        self._stale = True  # the statistics do not yet belong to the averaged weights
        self._seen_g_step = 0
        self._paired: tuple = (None, None)

    state_name = "ema"

    def build_state(self, pl_module) -> torch.nn.Module:
        self.module = pl_module  # for its latent size and label space (standing statistics)
        return copy.deepcopy(pl_module.generator).requires_grad_(False)

    def bind_state(self, state: torch.nn.Module) -> None:
        self.state = self.ema = state

    def decay_at(self, g_step: int) -> float:
        """The decay for the update after G step `g_step` (counted from 1); 0 means copy."""
        if g_step <= self.start_step:
            return 0.0
        t = g_step - self.start_step
        return min(self.decay, (1 + t) / (10 + t)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, generator: torch.nn.Module, decay: float) -> None:
        """decay * ema + (1 - decay) * G for every weight in one foreach call (one kernel per
        dtype and device, not one per parameter), then G's buffers copied in one more."""
        ema_params, params = self._weights(generator)
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        if self.bn_images:  # re-estimated when next used (standing_statistics)
            self._stale = True
            return
        # Buffers are looked up each time: Module.to() replaces buffer tensors (not parameters)
        ema_buffers = dict(self.ema.named_buffers())
        buffers = dict(generator.named_buffers())
        if buffers:
            torch._foreach_copy_([ema_buffers[n] for n in buffers], list(buffers.values()))

    def _weights(self, generator: torch.nn.Module) -> tuple[list, list]:
        """(EMA weights, G's weights) matched by name, once per (G, EMA) pair: the parameters
        stay the same objects when the optimizer updates them or Module.to() moves them."""
        if self._paired[0] is not generator or self._paired[1] is not self.ema:
            ema_params = dict(self.ema.named_parameters())
            params = dict(generator.named_parameters())
            self._paired = (generator, self.ema, [ema_params[n] for n in params],
                            list(params.values()))
        return self._paired[2:]

    def on_train_start(self, trainer, pl_module):
        self._seen_g_step = pl_module.g_step  # restored by now when resuming

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # With n_critic > 1 not every batch has a G step: update only after one.
        if pl_module.g_step != self._seen_g_step:
            self._seen_g_step = pl_module.g_step
            self.update(pl_module.generator, self.decay_at(pl_module.g_step))

    @torch.no_grad()
    def standing_statistics(self) -> None:
        """The average's BatchNorm statistics as the mean over `bn_images` of its own samples
        (train mode, cumulative average), from a fixed seed."""
        self._stale = False
        if self.module is None:
            return
        weight = next(self.ema.parameters())
        labels = self.module.spec.labels.sample(self.bn_images, seed=0)
        g = torch.Generator()
        g.manual_seed(0)
        standing_batchnorm(self.ema, (
            (torch.randn(len(chunk), self.module.latent_dim, generator=g).to(weight.device,
                                                                              weight.dtype),
             chunk.to(weight.device)) for chunk in labels.split(500)))

    def sampling_generator(self, generator):
        if self.ema is None:
            return generator
        if self.bn_images and self._stale:
            self.standing_statistics()
        return self.ema

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        # Lightning gathered the weights before this hook: put the re-estimated statistics in
        if not self.bn_images or self.ema is None:
            return
        self.sampling_generator(pl_module.generator)
        weights = checkpoint["state_dict"]
        for name, buffer in self.ema.named_buffers():
            key = f"trick_state.{self.state_name}.{name}"
            if key in weights:
                weights[key] = buffer.detach().clone()
