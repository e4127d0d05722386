"""A learnable mixture-of-Gaussians latent (DeLiGAN, Gurumurthy et al. CVPR 2017; the latent
Ben-Yosef & Weinshall 2018 use against "no GAN's land").

G fed one Gaussian z maps a connected blob onto ten disconnected digit manifolds, so some of its
mass must land between them (blends). DeLiGAN feeds G a sample of N learned Gaussians instead,
z' = mu_c + sigma_c * eps with c uniform over the N components: G may give each its own mode and
leave the gaps between them empty. mu and sigma are G's parameters, trained by G's loss; a
regulariser (gan/tricks/mixture_prior.py) keeps sigma from shrinking to 0.

Everything else in the project draws z ~ N(0, I) (training noise, fixed grids, gan.generate,
latent walks, export), so the mixture is a deterministic map of that z, inside G: the same z
gives the same image, the weights live in G's state_dict (gan.generate rebuilds them from the
config), and the EMA copy averages them with the rest of G. The map is exact, not approximate:

- the component comes from the direction of the first two coordinates, theta = atan2(z_1, z_0),
  which is uniform on (-pi, pi] and independent of the radius r = |(z_0, z_1)|; cut into N equal
  arcs, the arc is c (uniform over 0..N-1) and the position inside it, v, is uniform on [0, 1)
  and independent of c;
- the angle 2 pi v - pi with the radius r is again a standard normal pair (a uniform angle and a
  Rayleigh radius, independent), so eps = (r cos, r sin, z_2, ...) ~ N(0, I), independent of c.

Why the direction and not u = Phi(z_0) * N (the inverse-CDF form): scaling z by psi (the
truncation sampler, gan/sampling/posthoc.py) keeps every direction, so `prior(psi * z)` is
`mu_c + psi * sigma_c * eps` with the same component c: truncation narrows each component and
never moves mass between components. Through Phi, psi would squeeze z_0 towards 0 and pick the
middle components more often. (psi = 0 leaves no direction: every image is then mu of one
component.) atan2, sin, cos and floor also export to ONNX (gan.export), as Phi^-1 (ndtri) does not.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MixturePrior(nn.Module):
    """z (B, D) ~ N(0, I) -> z' (B, D) ~ (1/N) sum_c N(mu_c, diag(sigma_c^2)), deterministically.

    DeLiGAN's initialisation: mu ~ U(-1, 1), sigma = `sigma` (0.2) for every component and
    dimension; components equally likely (the paper keeps the weights uniform)."""

    def __init__(self, latent_dim: int, components: int, sigma: float = 0.2):
        super().__init__()
        if components < 1:
            raise ValueError(f"model.generator.prior_components={components} must be >= 1 "
                             "(0: no mixture prior)")
        if latent_dim < 2:
            raise ValueError(f"a mixture prior picks its component from two noise coordinates: "
                             f"model.latent_dim={latent_dim} must be >= 2")
        if not sigma > 0:
            raise ValueError(f"model.generator.prior_sigma={sigma} must be > 0 (DeLiGAN: 0.2)")
        self.components = components
        self.mu = nn.Parameter(torch.empty(components, latent_dim).uniform_(-1.0, 1.0))
        self.sigma = nn.Parameter(torch.full((components, latent_dim), float(sigma)))

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(component (B,) int64, eps (B, D) ~ N(0, I) independent of it) for z ~ N(0, I)."""
        z0, z1 = z[:, 0], z[:, 1]
        n = self.components
        u = (torch.atan2(z1, z0) / (2 * math.pi) + 0.5) * n  # uniform on [0, N]
        c = u.floor().clamp(0, n - 1)  # u = N only at theta = pi exactly: the last arc
        angle = (u - c) * (2 * math.pi) - math.pi  # uniform on [-pi, pi), independent of c
        r = torch.sqrt(z0 * z0 + z1 * z1)
        eps = torch.cat([(r * torch.cos(angle)).unsqueeze(1), (r * torch.sin(angle)).unsqueeze(1),
                         z[:, 2:]], dim=1)
        return c.long(), eps

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c, eps = self.split(z)
        return self.mu[c] + self.sigma[c] * eps  # (B, D)


def mixture_prior(latent_dim: int, components: int, sigma: float) -> nn.Module:
    """The generators' prior option: `components` = 0 is no module with weights (nn.Identity),
    so a generator without the prior has exactly the state_dict it had before the option."""
    return MixturePrior(latent_dim, components, sigma) if components else nn.Identity()
