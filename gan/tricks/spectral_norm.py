"""Spectral normalisation of D (and optionally G) as a trick, with checkpoints that stay plain.

torch's parametrisation stores a spectrally normalised layer as `parametrizations.weight.original`
plus the power-iteration vectors `_u`, `_v`. A net rebuilt from the config (gan.generate, init_from)
has a plain `weight`, so the checkpoint gets the effective weight W / sigma under `weight` and the
exact parametrisation state under `spectral_norm.<key>`; loading puts it back, so resume is exact.
"""

from __future__ import annotations

import weakref

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from gan.core.trick import Trick
from gan.io.checkpoint import STASH  # checkpoint prefix of the exact parametrisation state
from gan.networks.layers import WEIGHT_LAYERS

_SUFFIXES = ("parametrizations.weight.original", "parametrizations.weight.0._u",
             "parametrizations.weight.0._v")


def is_normalised(layer: nn.Module) -> bool:
    return parametrize.is_parametrized(layer, "weight") or hasattr(layer, "weight_orig")


def apply_spectral_norm(net: nn.Module, n_power_iterations: int = 1) -> int:
    """Normalise every conv/linear/embedding weight of `net`; returns how many layers it changed.

    Layers already normalised (a net that uses SN itself, or the legacy hook) are left alone:
    normalising twice would divide by sigma twice. Embeddings are included because the
    projection discriminator normalises its class embedding too (Miyato & Koyama 2018)."""
    count = 0
    for layer in list(net.modules()):
        if isinstance(layer, WEIGHT_LAYERS) and not is_normalised(layer):
            # dim=1 for transposed convs is chosen by torch (their weight is (C_in, C_out, ...)).
            spectral_norm(layer, n_power_iterations=n_power_iterations)
            count += 1
    return count


def effective_weight(layer: nn.Module):
    """W / sigma with the stored u, v, without a power-iteration step (eval-mode forward)."""
    sn = layer.parametrizations.weight[0]
    was_training = sn.training
    sn.eval()
    try:
        return sn(layer.parametrizations.weight.original).detach()
    finally:
        sn.train(was_training)


def _sn_layers(module: nn.Module):
    for name, layer in module.named_modules():
        if parametrize.is_parametrized(layer, "weight") and hasattr(
            layer.parametrizations.weight[0], "_u"
        ):
            yield (f"{name}." if name else ""), layer


def _to_plain(module, state_dict, prefix, local_metadata):
    """state_dict post-hook: plain `weight` = W / sigma; exact state moved under STASH."""
    for name, layer in _sn_layers(module):
        key = prefix + name
        if key + _SUFFIXES[0] not in state_dict:
            continue  # already converted (hook registered twice)
        for suffix in _SUFFIXES:
            state_dict[STASH + key + suffix] = state_dict.pop(key + suffix)
        state_dict[key + "weight"] = effective_weight(layer)


def _from_plain(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
    """load_state_dict pre-hook: the inverse of `_to_plain`, so a resumed run is bit-exact."""
    for name, _ in _sn_layers(module):
        key = prefix + name
        if STASH + key + _SUFFIXES[0] not in state_dict:
            continue  # a raw (unconverted) state dict: nothing to undo
        state_dict.pop(key + "weight", None)
        for suffix in _SUFFIXES:
            state_dict[key + suffix] = state_dict.pop(STASH + key + suffix)


_HOOKED: weakref.WeakSet = weakref.WeakSet()  # modules that carry the plain-weights hooks


class SpectralNorm(Trick):
    """Spectral normalisation (Miyato et al. 2018): every conv/linear weight of D is divided by
    its largest singular value, estimated by `n_power_iterations` power iterations per forward,
    so each layer is 1-Lipschitz. `generator=true` normalises G too (Zhang et al. 2019, SAGAN),
    and then also the EMA copy, whichever trick comes first.

    Applied in `setup`: before `configure_optimizers` (the optimizers must hold the new
    `original` parameters) and before the DDP wrap."""

    def __init__(self, generator: bool = False, n_power_iterations: int = 1):
        if n_power_iterations < 1:
            raise ValueError("tricks.spectral_norm.n_power_iterations must be >= 1, "
                             f"got {n_power_iterations}")
        self.generator, self.n_power_iterations = generator, n_power_iterations

    def setup(self, trainer, pl_module, stage):
        nets = [pl_module.discriminator]
        if self.generator:  # G (an EMA copy is built after every callback's setup: from it)
            nets.append(pl_module.generator)
        for net in nets:
            apply_spectral_norm(net, self.n_power_iterations)
        if pl_module not in _HOOKED:  # once per module, on a second fit too
            pl_module.register_state_dict_post_hook(_to_plain)
            pl_module.register_load_state_dict_pre_hook(_from_plain)
            _HOOKED.add(pl_module)
