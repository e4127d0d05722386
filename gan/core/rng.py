"""Every random stream of a process, saved and put back: the exact part of an exact resume.

One entry per global rank (python, numpy, torch CPU, every CUDA device), taken when a
checkpoint is written and restored just before the first resumed step (gan/runs/resume.py)."""

from __future__ import annotations

import logging
import random

import lightning as L
import numpy as np
import torch

log = logging.getLogger(__name__)


def rng_state() -> dict:
    """This process's random streams, as tensors and plain values (loadable weights_only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def all_rng_states(trainer: L.Trainer) -> dict[int, dict]:
    """{global rank: rng_state()} of every process (each draws its own z under DDP)."""
    mine = rng_state()
    if trainer.world_size == 1 or not torch.distributed.is_initialized():
        return {trainer.global_rank: mine}
    gathered = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, (trainer.global_rank, mine))
    return dict(gathered)
