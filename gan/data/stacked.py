"""Stacked MNIST (Metz et al. 2017; the mode-collapse benchmark of VEEGAN, PacGAN, R3GAN and the
self-conditioned GAN): each image is 3 independent MNIST digits stacked as channels,
(3, 28, 28), so the data has 1,000 modes; an image's label is its mode,
100 * d0 + 10 * d1 + d2 (0..999). gan/metrics/modes.py counts the modes a generator reaches.

Read from the same IDX files as data=mnist (`<root>/MNIST/raw/`). The triples are drawn once by
a generator seeded with `triple_seed` (not the run's seed: every seed of a comparison trains on
the same dataset), training triples from the 60,000 training digits and held-out triples from
the 10,000 test digits, each digit position independent, with replacement.

Built on the fly: the module keeps the digits (uint8, 47 MB for the training split) and the
(N, 3) index triples (1.4 MB for 60,000), and gathers each batch's pixels by index
(`StackedImages`); the stacked pixels of 60,000 images would take 141 MB. The held-out split is
materialised, since the metrics read it whole: 50,000 triples (118 MB), so that both protocols
have their reference, the papers' 26,000 samples and Liu et al.'s 50,000. The metrics build
their reference from this class's defaults (triple_seed 0), so every run is scored against the
same triples whatever its own `data.triple_seed`.

`n_train` defaults to 60,000: an epoch is as many images (and steps) as an MNIST epoch, so
budgets and the recipes' epochs carry over, and every digit appears about 3 times. The papers'
own sizes differ (and are not pinned here); raise `data.n_train` at no memory cost that
matters (8 bytes x 3 per triple).
"""

from __future__ import annotations

import logging

import torch

from gan.data.images import MNIST

log = logging.getLogger(__name__)


class StackedImages:
    """N stacked images gathered from `digits` (D, H, W) uint8 by `triples` (N, 3): indexing
    with a tensor of indices, a slice or an int gives (..., 3, H, W) uint8, like the resident
    tensor the other data modules keep (what ShuffledBatches, grids and tricks read)."""

    dtype = torch.uint8

    def __init__(self, digits: torch.Tensor, triples: torch.Tensor):
        self.digits, self.triples = digits, triples

    def __len__(self) -> int:
        return len(self.triples)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.triples), 3, *self.digits.shape[1:]))

    @property
    def device(self) -> torch.device:
        return self.digits.device

    def to(self, device) -> StackedImages:
        return StackedImages(self.digits.to(device), self.triples.to(device))

    def __getitem__(self, idx) -> torch.Tensor:
        return self.digits[self.triples[idx]]  # (B, 3) indices -> (B, 3, H, W)

    def materialize(self) -> torch.Tensor:
        return self[:]


class StackedMNIST(MNIST):
    name = extractor = "stacked_mnist"  # per-channel MNIST features, 1,000 modes
    img_shape = (3, 28, 28)
    num_classes = 1000
    final_n = 26_000  # the papers' protocol (PacGAN, VEEGAN, R3GAN); Liu et al.: 50,000
    reference_size = 50_000  # the metrics' test triples (this class's default n_test)
    # the mode-collapse benchmark's score: KL(mode histogram || uniform), lower is better
    primary_metric = "mode_kl"

    @classmethod
    def reference_tag(cls, train: bool) -> str:
        """Which triples the metrics' reference is (this class's defaults), for the names of
        cached features: a reference of other triples must never be read from the cache."""
        return f"triples{60_000 if train else cls.reference_size}_seed0"

    def __init__(self, n_train: int = 60_000, n_test: int | None = None, triple_seed: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        n_test = self.reference_size if n_test is None else n_test
        for key, value in (("n_train", n_train), ("n_test", n_test)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"data.{key}={value} must be an integer >= 1 (stacked images)")
        self.n_train, self.n_test, self.triple_seed = n_train, n_test, triple_seed

    def train_size(self) -> int:
        return self.n_train

    def triples(self, train: bool, n_digits: int) -> torch.Tensor:
        """(N, 3) digit indices, the same for every run with this `triple_seed`."""
        g = torch.Generator().manual_seed(self.triple_seed * 2 + int(train))
        n = self.n_train if train else self.n_test
        return torch.randint(0, n_digits, (n, 3), generator=g)

    def load(self, train: bool):
        digits, labels = super().load(train)  # (D, 1, 28, 28) uint8, (D,)
        triples = self.triples(train, len(digits))
        d = labels[triples]  # (N, 3) digit labels
        modes = 100 * d[:, 0] + 10 * d[:, 1] + d[:, 2]
        images = StackedImages(digits[:, 0], triples)
        log.info("Stacked MNIST %s split: %d triples of %d digits", "train" if train else "test",
                 len(triples), len(digits))
        return (images if train else images.materialize()), modes
