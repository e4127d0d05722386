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


def restore_rank_stream(states: dict[int, dict], rank: int) -> None:
    """Put back `rank`'s streams from a checkpoint's {rank: rng_state()}. A rank the checkpoint
    has no entry for (resumed on more ranks than it was saved from) starts from the lowest
    saved rank's state, then reseeds every stream from a number drawn from it plus its rank:
    its own stream, the same on every resume, never a copy of another rank's z."""
    if rank in states:
        set_rng_state(states[rank])
        return
    set_rng_state(states[min(states)])
    seed = int(torch.randint(0, 2**62, (1,))) + rank
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # every CUDA device's stream too
    log.info("resume: no random state saved for rank %d (the checkpoint has ranks %s); "
             "its streams are reseeded from rank %d's", rank, sorted(states), min(states))


def all_rng_states(trainer: L.Trainer) -> dict[int, dict]:
    """{global rank: rng_state()} of every process (each draws its own z under DDP)."""
    mine = rng_state()
    if trainer.world_size == 1 or not torch.distributed.is_initialized():
        return {trainer.global_rank: mine}
    gathered = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, (trainer.global_rank, mine))
    return dict(gathered)
