"""`compile=true`: torch.compile G and D in place, where it is safe.

In place (`nn.Module.compile()`), so parameter names keep no `_orig_mod.` prefix and checkpoints
load into eager nets and back. A penalty on D's input gradient (WGAN-GP, WGAN-LP, R1, R2)
differentiates D twice, which torch.compile's aot_autograd refuses in torch 2.14 ("torch.compile
with aot_autograd does not currently support double backward", found on the CPU; pytorch
#91469): then D stays eager, with a log line, and G is still compiled.
"""

from __future__ import annotations

import logging

from torch import nn

log = logging.getLogger(__name__)


def double_backward_users(module: nn.Module) -> list[str]:
    """The loss and tricks of a GAN module whose penalties differentiate D's input gradient."""
    parts = [module.loss, *module.tricks]
    return [type(p).__name__ for p in parts if getattr(p, "double_backward", False)]


def compile_nets(module: nn.Module) -> None:
    """torch.compile's default mode. CUDA graphs (mode="reduce-overhead") are not offered: they
    could not be validated without a GPU."""
    module.generator.compile()
    users = double_backward_users(module)
    if users:
        log.info("compile=true: D stays eager because %s differentiate(s) D's input gradient "
                 "(double backward), which torch.compile does not support; G is compiled",
                 ", ".join(users))
        return
    module.discriminator.compile()
    log.info("compile=true: G and D compiled")
