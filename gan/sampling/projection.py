"""GAN inversion: the latent z (and, for a conditional generator, the class) whose image best
matches a target image.

The distance is pixel plus feature distance (the features of the shipped metric classifier, as
perceptual losses use a fixed network's features: Johnson et al. 2016; stylegan2's projector uses
VGG16). Plain gradient descent on z from one random start often stalls in a poor basin, so:

1. a bank of random z per class is drawn once and scored against every target (forward passes
   only, shared by all targets); the best `restarts` of each allowed class become the starts;
2. all starts of all targets are optimised together with Adam in one batch (every candidate's
   loss is its own, and Adam's update is per element, so batching changes no candidate's path);
3. after `explore_steps` only the `keep` best candidates of each target go on; this is how the
   class is chosen when none is given: the classes that reconstruct worst drop out early;
4. the best candidate per target is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gan.core.drawing import is_conditional


@dataclass
class Projection:
    z: torch.Tensor  # (N, latent_dim)
    labels: torch.Tensor | None  # (N,) the class of each reconstruction; None: unconditional
    images: torch.Tensor  # (N, C, H, W) in [-1, 1]: the reconstructions
    distance: torch.Tensor  # (N,) pixel + feature distance of each reconstruction to its target


class Distance(nn.Module):
    """Per-image distance: mean squared pixel difference (images in [-1, 1]) plus
    `feature_weight` times the squared distance of the L2-normalised classifier features
    (2 - 2 cos, in [0, 4]). `features=None` leaves the pixel term alone."""

    def __init__(self, features: nn.Module | None = None, feature_weight: float = 1.0):
        super().__init__()
        self.features = features
        self.feature_weight = feature_weight if features is not None else 0.0

    def embed(self, images: torch.Tensor) -> torch.Tensor | None:
        if self.features is None or self.feature_weight == 0:
            return None
        return F.normalize(self.features(images).flatten(1), dim=1)  # (B, F)

    def forward(self, fake: torch.Tensor, target: torch.Tensor,
                target_features: torch.Tensor | None) -> torch.Tensor:
        d = (fake - target).pow(2).flatten(1).mean(1)  # (B,)
        if target_features is not None:
            d = d + self.feature_weight * (self.embed(fake) - target_features).pow(2).sum(1)
        return d

    @torch.no_grad()
    def pairwise(self, fakes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(N targets, M fakes) distances, by |a - b|^2 = |a|^2 + |b|^2 - 2ab (no N*M images)."""
        a, b = targets.flatten(1), fakes.flatten(1)
        d = (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.T) / a.shape[1]
        fa, fb = self.embed(targets), self.embed(fakes)
        if fa is not None:
            d = d + self.feature_weight * (2 - 2 * fa @ fb.T)
        return d.clamp_min(0)


def _generate(generator: nn.Module, z: torch.Tensor, labels: torch.Tensor | None):
    return generator(z, labels) if labels is not None else generator(z)


@torch.no_grad()
def _bank_starts(generator, distance, targets, allowed, latent_dim, bank, restarts, top_classes,
                 g):
    """For every target, the `restarts` best of `bank` random z in each of its `top_classes`
    allowed classes that the bank matches best. Returns (target index, z, class) per start;
    class 0 stands in for an unconditional G's."""
    # A class no target allows is not drawn; -1 stands for "no class" (unconditional G).
    classes = [c for c in range(allowed.shape[1]) if allowed[:, c].any()] or [-1]
    device = targets.device  # the generator's: z comes from the CPU stream `g`, then moves
    best_d, best_z = [], []
    for c in classes:
        z = torch.randn(bank, latent_dim, generator=g, device="cpu").to(device)
        y = None if c < 0 else torch.full((bank,), c, dtype=torch.long, device=device)
        fakes = torch.cat([_generate(generator, zc, yc).clamp(-1, 1) for zc, yc in
                           zip(z.split(500), y.split(500) if y is not None else [None] * bank)])
        d = distance.pairwise(fakes, targets)  # (N, bank)
        if c >= 0:
            d[~allowed[:, c].to(device)] = torch.inf
        d, idx = d.topk(min(restarts, bank), dim=1, largest=False)  # (N, restarts)
        best_d.append(d)
        best_z.append(z[idx])  # (N, restarts, latent_dim)
    best_d, best_z = torch.stack(best_d, 1), torch.stack(best_z, 1)  # (N, classes, restarts, ...)
    top = best_d[:, :, 0].topk(min(top_classes, len(classes)), dim=1, largest=False).indices
    rows, zs, ys = [], [], []
    for i in range(len(targets)):
        for k in top[i].tolist():
            if torch.isinf(best_d[i, k, 0]):
                continue  # a class this target does not allow
            rows += [i] * best_z.shape[2]
            zs.append(best_z[i, k])
            ys += [max(classes[k], 0)] * best_z.shape[2]
    return (torch.tensor(rows, device=device), torch.cat(zs),
            torch.tensor(ys, device=device))


def project(generator: nn.Module, targets: torch.Tensor, *, num_classes: int = 0,
            labels: torch.Tensor | None = None, features: nn.Module | None = None,
            feature_weight: float = 1.0, steps: int = 200, explore_steps: int = 50,
            restarts: int = 2, top_classes: int = 3, keep: int = 1, bank: int = 256,
            lr: float = 0.05, prior_weight: float = 1.0, seed: int = 0,
            batch_size: int = 2000) -> Projection:
    """Project `targets` (N, C, H, W) in [-1, 1] into `generator`.

    `labels` (N,) fixes each target's class (conditional G); without it the class is searched.
    `prior_weight` pulls |z|^2 / latent_dim towards 1, where a Gaussian z lies, so nearby z
    (variations) and other classes (the style row) stay images the generator was trained on."""
    if not 0 < explore_steps <= steps:
        raise ValueError(f"explore_steps must be in 1..steps={steps}, got {explore_steps}")
    generator = generator.eval().requires_grad_(False)
    conditional = is_conditional(generator)
    latent_dim = generator.latent_dim
    n = len(targets)
    if conditional:
        allowed = torch.ones(n, num_classes, dtype=torch.bool)
        if labels is not None:
            allowed = F.one_hot(labels.long().cpu(), num_classes).bool()
    else:
        allowed = torch.zeros(n, 0, dtype=torch.bool)
    distance = Distance(features, feature_weight)
    g = torch.Generator().manual_seed(seed)
    rows, z, ys = _bank_starts(generator, distance, targets, allowed, latent_dim, bank,
                               restarts, top_classes, g)
    target_features = distance.embed(targets)

    def losses(z: torch.Tensor, rows: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        out = []
        for idx in torch.arange(len(z), device=z.device).split(batch_size):
            r = rows[idx]
            fake = _generate(generator, z[idx], ys[idx] if conditional else None)
            tf = target_features[r] if target_features is not None else None
            out.append(distance(fake, targets[r], tf))
        return torch.cat(out)

    z = z.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for step in range(steps):
        if step == explore_steps and keep:
            z, opt, rows, ys = _prune(z, opt, rows, ys, losses(z, rows, ys).detach(), keep, lr)
        for group in opt.param_groups:  # cosine decay: large moves first, then settle
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        d = losses(z, rows, ys)
        prior = (z.pow(2).mean(1) - 1).pow(2)
        opt.zero_grad(set_to_none=True)
        (d + prior_weight * prior).sum().backward()
        opt.step()
    with torch.no_grad():
        z = z.detach()
        d = losses(z, rows, ys)
        best = torch.stack([torch.where(rows == i, d, torch.inf).argmin() for i in range(n)])
        z, ys = z[best], ys[best]
        y = ys if conditional else None
        images = _generate(generator, z, y).clamp(-1, 1)
    return Projection(z=z, labels=y, images=images, distance=d[best])


def _prune(z, opt, rows, ys, d, keep, lr):
    """Keep each target's `keep` lowest-distance candidates, and their Adam moments."""
    kept = []
    for i in rows.unique():
        mine = torch.nonzero(rows == i).squeeze(1)
        kept.append(mine[d[mine].argsort()[:keep]])
    kept = torch.cat(kept)
    state = opt.state[z]
    z = z.detach()[kept].clone().requires_grad_(True)
    new = torch.optim.Adam([z], lr=lr)
    new.state[z] = {k: (v[kept].clone() if v.ndim else v.clone()) for k, v in state.items()}
    return z, new, rows[kept], ys[kept]


@torch.no_grad()
def random_distance(generator: nn.Module, targets: torch.Tensor, labels: torch.Tensor | None,
                    features: nn.Module | None = None, feature_weight: float = 1.0,
                    seed: int = 0) -> torch.Tensor:
    """(N,) the same distance for one random z per target (with the target's class, for a
    conditional G): the baseline a projection has to beat."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(targets), generator.latent_dim, generator=g, device="cpu")
    fakes = _generate(generator.eval(), z.to(targets.device), labels).clamp(-1, 1)
    distance = Distance(features, feature_weight)
    return distance(fakes, targets, distance.embed(targets))
