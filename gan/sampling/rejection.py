"""Discriminator rejection sampling (Azadi et al., ICLR 2019).

A D trained to optimality gives the density ratio p_data / p_g = exp(D~(x)) (D~ its logit), so
accepting a fake x with probability exp(D~(x) - D~*) (D~* the largest logit) turns p_g into
p_data. In practice that accepts almost nothing, so the paper accepts with
p = sigmoid(F(x) - gamma), F(x) = D~(x) - D~* - log(1 - exp(D~(x) - D~* - eps)), where gamma (here
the `percentile`-th percentile of F over a burn-in sample) sets how strict it is. D~* is
estimated on the burn-in sample and raised whenever a larger logit is seen.

Each image slot keeps its label and redraws until it is accepted (at most `max_rounds` times;
slots still open then keep their last candidate and are counted in `unfilled`). `describe()`
reports the acceptance rate: accepted images / candidates drawn.
"""

from __future__ import annotations

import torch

from gan.sampling.posthoc import Critic, Plain, Sample


class DRS(Plain):
    name = "drs"
    needs_critic = True

    def __init__(self, percentile: float = 80.0, burn_in: int = 2000, max_rounds: int = 50,
                 epsilon: float = 1e-6):
        super().__init__()
        if not 0.0 <= percentile <= 100.0 or burn_in < 1 or max_rounds < 1 or epsilon <= 0:
            raise ValueError(f"sampler=drs needs 0 <= percentile <= 100, burn_in >= 1, "
                             f"max_rounds >= 1 and epsilon > 0, got percentile={percentile}, "
                             f"burn_in={burn_in}, max_rounds={max_rounds}, epsilon={epsilon}")
        self.percentile, self.burn_in = percentile, burn_in
        self.max_rounds, self.epsilon = max_rounds, epsilon

    def settings(self) -> dict:
        return {"percentile": self.percentile, "burn_in": self.burn_in}

    def score(self, logits: torch.Tensor, max_logit: torch.Tensor) -> torch.Tensor:
        """F(x): the log acceptance ratio, shifted so it is not vanishingly small."""
        gap = logits - max_logit
        return gap - torch.log(-torch.expm1(gap - self.epsilon))

    @staticmethod
    def candidates(sample: Sample, critic: Critic, labels, latent_dim, generator, batch_size):
        images, logits = [], []
        for y in labels.split(batch_size):
            z = torch.randn(len(y), latent_dim, generator=generator, device=y.device)
            x = sample(z, y).clamp(-1, 1)
            images.append(x.cpu())
            logits.append(critic(x, y).float().cpu())
        return torch.cat(images), torch.cat(logits)

    @torch.no_grad()
    def draw(self, sample, n, latent_dim, labels, seed=0, critic=None, batch_size=500):
        if critic is None:
            raise ValueError("sampler=drs needs the discriminator's logits (a gan.train "
                             "checkpoint holding D's weights)")
        g = torch.Generator(device=labels.device).manual_seed(seed)
        burn = labels[torch.arange(self.burn_in, device=labels.device) % len(labels)]
        _, logits = self.candidates(sample, critic, burn, latent_dim, g, batch_size)
        max_logit = logits.max()
        gamma = torch.quantile(self.score(logits, max_logit), self.percentile / 100)
        out, pending, tried = None, torch.arange(n), 0
        for _ in range(self.max_rounds):
            images, logits = self.candidates(sample, critic, labels[pending.to(labels.device)],
                                             latent_dim, g, batch_size)
            out = out if out is not None else torch.empty(n, *images.shape[1:])
            tried += len(pending)
            max_logit = torch.maximum(max_logit, logits.max())
            accept_p = torch.sigmoid(self.score(logits, max_logit) - gamma)
            accept = torch.rand(len(pending), generator=g, device=labels.device).cpu() <= accept_p
            out[pending] = images  # open slots hold their latest candidate
            pending = pending[~accept]
            if not len(pending):
                break
        self.stats = {"acceptance_rate": (n - len(pending)) / tried, "gamma": float(gamma),
                      "unfilled": len(pending)}
        return out
