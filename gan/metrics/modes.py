"""Stacked MNIST mode coverage (Metz et al. 2017; PacGAN, VEEGAN, R3GAN report it): each of an
image's 3 channels is one MNIST digit, so a (3, 28, 28) sample has one of 1,000 modes,
100 * d0 + 10 * d1 + d2, each digit read by the shipped MNIST classifier
(gan/metrics/classifier.py). Reported: how many modes hold at least one sample, and
KL(p_samples || uniform) over the 1,000 modes, in nats and (Liu et al. 2020's unit) in log10.
The papers use 26,000 samples (Liu et al. 50,000). A finite sample alone puts a floor under the
KL (n uniform draws do not fill 1,000 bins evenly): report real triples' own KL at the same n
beside a generator's.

Pure functions; the metrics callback wires them in.
"""

from __future__ import annotations

import math

import torch
from torch import nn

MIN_SAMPLES = 1000


@torch.no_grad()
def stacked_modes(images: torch.Tensor, classifier: nn.Module, batch: int = 500) -> torch.Tensor:
    """The mode (0..999) of each of N stacked images (N, 3, 28, 28) in [-1, 1] (or uint8): each
    channel classified as one digit by `classifier` (load_classifier("mnist"))."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"stacked_modes needs (N, 3, H, W) images, got {tuple(images.shape)}")
    device = next(classifier.parameters()).device
    digits = []
    for x in images.split(batch):
        # channel c of image i becomes digit image 3i + c: (B, 3, H, W) -> (3B, 1, H, W)
        flat = x.to(device).reshape(-1, 1, *x.shape[2:])
        logits = classifier.logits(flat.contiguous(memory_format=torch.channels_last))
        digits.append(logits.argmax(1).view(-1, 3).cpu())  # (B, 3)
    d = torch.cat(digits)
    return (100 * d[:, 0] + 10 * d[:, 1] + d[:, 2]).long()


def mode_metrics(modes: torch.Tensor, n_modes: int = 1000) -> dict[str, float | int]:
    """Modes hit (>= 1 sample) and KL(p_samples || uniform over n_modes), in nats and log10."""
    n = len(modes)
    if n < MIN_SAMPLES:
        raise ValueError(f"a mode count needs at least {MIN_SAMPLES:,} samples to mean "
                         f"anything (got {n:,}; the papers use 26,000)")
    if int(modes.min()) < 0 or int(modes.max()) >= n_modes:
        raise ValueError(f"modes must lie in 0..{n_modes - 1}, got {int(modes.min())}.."
                         f"{int(modes.max())}")
    counts = torch.bincount(modes.long().cpu(), minlength=n_modes).double()
    p = counts[counts > 0] / n
    kl = float((p * (p * n_modes).log()).sum())  # sum p log(p / (1 / n_modes))
    return {"modes": int((counts > 0).sum()), "mode_kl": kl, "mode_kl_log10": kl / math.log(10),
            "n": n}


class PerChannelDigits(nn.Module):
    """The `stacked_mnist` extractor: the shipped MNIST classifier on each channel. Features:
    the three channels' features side by side (3 x 128); logits: the joint log-probability of
    the 1,000 modes, log p(d0) + log p(d1) + log p(d2), so the argmax is the mode and the class
    scores (IS, classes_covered, class_kl) count modes. FID on these features compares the
    three digits' feature distributions jointly: a Stacked-MNIST FID of our own units, not a
    published one."""

    def __init__(self, digits: nn.Module):
        super().__init__()
        self.digits = digits
        self.num_features = 3 * digits.num_features
        self.num_classes = 1000

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = len(x)
        flat = x.reshape(b * 3, 1, *x.shape[2:]).contiguous(memory_format=torch.channels_last)
        f, logits = self.digits.features_and_logits(flat)
        lp = logits.log_softmax(1).view(b, 3, -1)  # (B, 3, 10)
        joint = (lp[:, 0, :, None, None] + lp[:, 1, None, :, None] + lp[:, 2, None, None, :])
        return f.view(b, -1), joint.reshape(b, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[0]
