"""`compile=true` (or a torch.compile mode: `reduce-overhead`, CUDA graphs, for static shapes
as ours are; `max-autotune`; `max-autotune-no-cudagraphs`): G and D compiled in place, where it
is safe.

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


MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(setting) -> str | None:
    """The torch.compile mode of a `compile=` setting: None for false, "default" for true."""
    if setting is False or setting is None:
        return None
    mode = "default" if setting is True else str(setting)
    if mode not in MODES:
        raise ValueError(f"compile must be true, false or one of {', '.join(MODES)}, "
                         f"got {setting!r}")
    return mode


def compile_nets(module: nn.Module, mode: str = "default") -> None:
    """torch.compile in `mode`, G always; D too unless the loss or a trick differentiates its
    input gradient (then it stays eager: CUDA graphs or not, aot_autograd refuses it)."""
    module.generator.compile(mode=mode)
    users = double_backward_users(module)
    if users:
        log.info("compile=%s: D stays eager because %s differentiate(s) D's input gradient "
                 "(double backward), which torch.compile does not support; G is compiled",
                 mode, ", ".join(users))
        return
    module.discriminator.compile(mode=mode)
    log.info("compile=%s: G and D compiled", mode)
