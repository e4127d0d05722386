"""Config values read with their type and range checked: a wrong one is refused in one line that
names the key (`n=abc must be an integer >= 1`), before any work, never as a TypeError deep in
torch."""

from __future__ import annotations

import math
import numbers

import torch

from gan.io.usage import UsageError


def integer(value, key: str, low: int | None = None, high: int | None = None,
            optional: bool = False) -> int | None:
    """`value` as an int in [low, high] (None allowed when `optional`)."""
    if value is None and optional:
        return None
    span = " and ".join(s for s in (f">= {low}" if low is not None else "",
                                    f"<= {high}" if high is not None else "") if s)
    wanted = f"an integer{' ' + span if span else ''}"
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value != int(value)):
        raise UsageError(f"{key}={value} must be {wanted}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise UsageError(f"{key}={value} must be {wanted}")
    return value


def number(value, key: str, positive: bool = False) -> float:
    """`value` as a finite float (> 0 when `positive`)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or (positive and value <= 0)):
        raise UsageError(f"{key}={value} must be a {'positive ' if positive else ''}number")
    return float(value)


def device(value, key: str = "device") -> str:
    """A torch device this machine has (`cpu`, `cuda`, `cuda:1`, `mps`)."""
    try:
        dev = torch.device(str(value))
    except (RuntimeError, ValueError):
        raise UsageError(f"{key}={value} is not a device: use cpu, cuda or cuda:<index>") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"{key}={value}: this machine has no CUDA device; use {key}=cpu")
        if dev.index is not None and dev.index >= count:
            raise UsageError(f"{key}={value}: this machine has {count} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{key}={value}: MPS is not available here; use {key}=cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"{key}={value}: use cpu or cuda")
    return str(dev)
