"""`init_from=<ckpt>`: start a run from the G and/or D weights of another gan.train checkpoint.

Unlike `ckpt_path=` (resume: counters, optimizer states, fixed noise go on), only weights move;
optimizers, counters and the new run's config start fresh, which is what transfer learning and
fine-tuning on a small set (with tricks=[freeze_d] or [diffaugment]) want.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch

from gan.spectral_norm import STASH

log = logging.getLogger(__name__)


def shape_errors(part: str, source: dict, target: dict) -> list[str]:
    """Every key that is missing, unexpected or shaped differently, one line each."""
    errors = [f"{part}.{k}: missing from the checkpoint" for k in target if k not in source]
    errors += [f"{part}.{k}: in the checkpoint but not in this model" for k in source
               if k not in target]
    errors += [f"{part}.{k}: checkpoint shape {tuple(source[k].shape)} != model shape "
               f"{tuple(target[k].shape)}" for k in source
               if k in target and tuple(source[k].shape) != tuple(target[k].shape)]
    return errors


class InitFrom(L.Callback):
    """Loads `parts` (generator, discriminator) from `ckpt_path` in `setup`, before the optimizers
    exist and before tricks re-parametrise the nets (callbacks come before tricks in the Trainer's
    list, so spectral_norm/ema/freeze_d then act on the loaded weights). Checks every key and
    shape first and names each mismatch. Does nothing when `ckpt_path` is null. When a run
    resumes (`ckpt_path=`), Lightning restores the checkpoint after `setup`, so the resumed
    weights win (Trainer.ckpt_path is not yet set in `setup` to skip the load)."""

    def __init__(self, ckpt_path: str | None = None,
                 parts: tuple[str, ...] | list[str] = ("generator", "discriminator")):
        self.ckpt_path = ckpt_path
        self.parts = list(parts)
        if not self.parts or not set(self.parts) <= {"generator", "discriminator"}:
            raise ValueError(f"callbacks.init_from.parts must be a non-empty subset of "
                             f"[generator, discriminator], got {self.parts}")

    def setup(self, trainer, pl_module, stage):
        if self.ckpt_path is None:
            return
        self.load(pl_module)

    def load(self, pl_module) -> None:
        path = Path(self.ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"init_from={path} does not exist")
        # weights_only=False: a Lightning checkpoint holds more than tensors (loop states);
        # init_from takes files you wrote yourself, as ckpt_path= does.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
            raise ValueError(f"init_from={path} is not a checkpoint written by gan.train")
        state = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith(STASH)}
        errors, loaded = [], {}
        for part in self.parts:
            source = {k[len(part) + 1:]: v for k, v in state.items() if k.startswith(part + ".")}
            target = getattr(pl_module, part).state_dict()
            if not source:
                errors.append(f"{part}: the checkpoint holds no {part} weights")
                continue
            errors += shape_errors(part, source, target)
            loaded[part] = source
        if errors:
            shown = "\n  ".join(errors[:20]) + (f"\n  ... {len(errors) - 20} more"
                                                if len(errors) > 20 else "")
            raise ValueError(
                f"init_from={path} does not fit this model:\n  {shown}\n"
                f"Transfer needs the same architecture (model=, its widths) and data shape "
                f"(img_shape, num_classes for conditional nets) as the checkpoint's run; "
                f"or restrict callbacks.init_from.parts.")
        for part, source in loaded.items():
            getattr(pl_module, part).load_state_dict(source)
        log.info("init_from=%s: loaded %s", path, ", ".join(loaded))
