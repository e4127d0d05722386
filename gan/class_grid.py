"""A per-class sample grid for conditional generators."""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_only

from gan.callbacks import SampleGrid
from gan.sampling import is_conditional


class ClassGrid(SampleGrid):
    """One row per class, one fixed noise vector per column, so a column shows what the label
    alone changes and a row how well one class covers its variations.

    Logged on SampleGrid's schedule (`every_n_epochs` / `every_n_steps`, and at the end) to
    TensorBoard as `samples/per_class` and to `<run dir>/samples/per_class_*.png`. A no-op when
    the generator is not conditional (no `conditional` attribute, or it is False), so it can sit
    in the default callbacks."""

    def __init__(self, every_n_epochs: int | None = 1, every_n_steps: int | None = None,
                 n_per_class: int = 8, seed: int = 0):
        super().__init__(every_n_epochs, every_n_steps, nrow=n_per_class)
        if n_per_class < 1:
            raise ValueError(f"callbacks.per_class.n_per_class must be >= 1, got {n_per_class}")
        self.n_per_class, self.seed = n_per_class, seed

    def on_train_start(self, trainer, pl_module):
        pass  # SampleGrid already logs the real images

    @rank_zero_only
    def _log_fixed(self, trainer, pl_module, filename: str) -> None:
        if not is_conditional(pl_module.generator):
            return
        self._last_logged_step = pl_module.g_step
        num_classes = pl_module.hparams.num_classes
        # The same columns every time (and across resumes): noise from a fixed seed.
        g = torch.Generator().manual_seed(self.seed)
        z = torch.randn(self.n_per_class, pl_module.latent_dim, generator=g)
        z = z.repeat(num_classes, 1).to(pl_module.device)  # (classes * n_per_class, latent_dim)
        labels = torch.arange(num_classes, device=pl_module.device)
        labels = labels.repeat_interleave(self.n_per_class)  # (classes * n_per_class,): row-major
        images = pl_module.sample(z, labels)
        self._log(trainer, "samples/per_class", images, f"per_class_{filename}")
