"""DiffAugment (Zhao et al. 2020): differentiable augmentation of every image D sees.

The ops follow the authors' DiffAugment_pytorch.py, on images in [-1, 1]: each draws its
parameters per sample, and each is differentiable in the image, so G's gradient flows through
the augmented fakes. Bounds for the 1-channel policy: brightness keeps |x| <= 1.5, contrast
(factor <= 1.5 around the image mean) <= 3; translation and cutout fill with 0, mid-grey.
There is no clamp: clamping would zero G's gradient wherever an augmented pixel saturates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gan.core.trick import Trick


def _per_sample(x: torch.Tensor) -> torch.Tensor:
    return torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)  # (B, 1, 1, 1)


def brightness(x: torch.Tensor) -> torch.Tensor:
    return x + (_per_sample(x) - 0.5)  # shift in [-0.5, 0.5]


def saturation(x: torch.Tensor) -> torch.Tensor:
    if x.size(1) != 3:  # colour saturation needs colours; a grey image has none
        return x
    mean = x.mean(dim=1, keepdim=True)  # (B, 1, H, W)
    return (x - mean) * (_per_sample(x) * 2) + mean  # factor in [0, 2]


def contrast(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (x - mean) * (_per_sample(x) + 0.5) + mean  # factor in [0.5, 1.5]


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio * size pixels in each direction, zero-filled."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (b, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1), device=x.device)
    rows = torch.arange(h, device=x.device) + dy + sy  # (B, H) rows of the padded image
    cols = torch.arange(w, device=x.device) + dx + sx  # (B, W)
    padded = F.pad(x, (sx, sx, sy, sy))  # (B, C, H + 2sy, W + 2sx)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(
        0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one (ratio * H) x (ratio * W) square per image, centred anywhere (clipped)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]  # (1, H, 1)
    xs = torch.arange(w, device=x.device)[None, None, :]  # (1, 1, W)
    inside = ((ys >= cy - ch // 2) & (ys < cy - ch // 2 + ch)
              & (xs >= cx - cw // 2) & (xs < cx - cw // 2 + cw))  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


class DiffAugment(Trick):
    """DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
    Training"): the same random, differentiable augmentations on real and fake images, in D's
    and G's steps alike, so D cannot overfit a small real set and G is not taught to produce
    augmented images (augmenting only reals would leak the augmentation into the samples).

    `policy` is a list (or comma-separated string) of `color` (brightness, contrast, and
    saturation for 3 channels), `translation` (up to 1/8 of the size) and `cutout` (a square of
    half the size), applied in that order as in the paper. `d_input` sees real and fake through
    the same hook, so both always get the same policy with independent per-sample draws."""

    def __init__(self, policy: str | list[str] = ("color", "translation", "cutout")):
        names = policy.split(",") if isinstance(policy, str) else list(policy)
        names = [n.strip() for n in names if n.strip()]
        unknown = [n for n in names if n not in POLICIES]
        if unknown:
            raise ValueError(f"tricks.diffaugment.policy: unknown {unknown}; "
                             f"choose from {sorted(POLICIES)}")
        self.policy = [name for name in POLICIES if name in names]  # the paper's order
        self.ops = [op for name in self.policy for op in POLICIES[name]]

    def d_input(self, images, step):
        for op in self.ops:
            images = op(images)
        return images.contiguous()
