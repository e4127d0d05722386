"""Gradient penalties on D's input, the one input-gradient core that losses (WGAN-GP, WGAN-LP)
and tricks (R1, R2) share."""

from __future__ import annotations

import torch


def input_gradient(critic, images: torch.Tensor) -> torch.Tensor:
    """grad_x D(x) at `images` (detached first), shape of `images`, with the graph kept
    (create_graph=True) so a penalty on it is differentiated w.r.t. D's weights.

    In the weights' dtype with autocast off: float32 under 32-true and the mixed precisions
    (under 16-mixed Lightning does not scale this autograd.grad, and fp16 input gradients
    underflow); bf16 / fp16 / fp64 under bf16-true / 16-true / 64-true, where the critic's
    weights are in that dtype and Lightning makes it torch's default dtype for the step."""
    x = images.detach().to(torch.get_default_dtype()).requires_grad_(True)
    # The input gradient too: under an enabled autocast its matmuls would run in bf16/fp16.
    with torch.autocast(device_type=x.device.type, enabled=False):
        out = critic(x).float()
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad


def gradient_penalty(critic, real, fake, one_sided: bool = False) -> torch.Tensor:
    """E[(||grad D(x_hat)|| - 1)^2] at x_hat on random lines between real and fake samples
    (Gulrajani et al. 2017; one-sided: Petzka et al. 2018's Lipschitz penalty)."""
    eps = torch.rand(real.size(0), *([1] * (real.dim() - 1)), device=real.device)
    x_hat = eps * real.detach().float() + (1 - eps) * fake.detach().float()
    excess = input_gradient(critic, x_hat).flatten(1).norm(dim=1) - 1
    return (excess.clamp(min=0) if one_sided else excess).pow(2).mean()


def squared_grad_norm(critic, images: torch.Tensor) -> torch.Tensor:
    """Per-sample ||grad_x D(x)||^2 at the given images, shape (B,) (R1/R2, Mescheder et al.
    2018)."""
    return input_gradient(critic, images).pow(2).flatten(1).sum(1)  # (B,)
