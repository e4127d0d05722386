"""`init_from=<ckpt>`: start a run from the G and/or D weights of another gan.train checkpoint.

Unlike `ckpt_path=` (resume: counters, optimizer states, fixed noise go on), only weights move;
optimizers, counters and the new run's config start fresh, which is what transfer learning and
fine-tuning on a small set (with tricks=[freeze_d] or [diffaugment]) want.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L

from gan.io.checkpoint import load_checkpoint, mismatch_error, part_weights, shape_errors

log = logging.getLogger(__name__)


class InitFrom(L.Callback):
    """Loads `parts` (generator, discriminator) from `ckpt_path` in `setup`, before the optimizers
    exist and before tricks re-parametrise the nets (gan.runs.wiring puts it ahead of the tricks
    in every run, whatever `callbacks=` says, so spectral_norm/ema/freeze_d then act on the
    loaded weights). Checks every key and
    shape first and names each mismatch. Does nothing when `ckpt_path` is null. When a run
    resumes (`ckpt_path=`), Lightning restores the checkpoint after `setup`, so the resumed
    weights win (Trainer.ckpt_path is not yet set in `setup` to skip the load)."""

    def __init__(self, ckpt_path: str | None = None,
                 parts: tuple[str, ...] | list[str] = ("generator", "discriminator")):
        self.ckpt_path = ckpt_path
        self.parts = list(parts)
        if not self.parts or not set(self.parts) <= {"generator", "discriminator"}:
            raise ValueError(f"init_from_parts must be a non-empty subset of "
                             f"[generator, discriminator], got {self.parts}")

    def setup(self, trainer, pl_module, stage):
        if self.ckpt_path is None:
            return
        self.load(pl_module)

    def load(self, pl_module) -> None:
        path = Path(self.ckpt_path)
        ckpt = load_checkpoint(path, key="init_from")
        errors, loaded = [], {}
        for part in self.parts:
            source = part_weights(ckpt["state_dict"], part)
            target = getattr(pl_module, part).state_dict()
            if not source:
                errors.append(f"{part}: the checkpoint holds no {part} weights")
                continue
            errors += shape_errors(part, source, target)
            loaded[part] = source
        if errors:
            # Transfer needs the same architecture (model=, its widths) and data shape
            # (img_shape, num_classes for conditional nets) for the parts it loads.
            raise mismatch_error(path, "init_from", ckpt["hyper_parameters"]["config"],
                                 pl_module.hparams.config or {}, errors,
                                 hint=", restrict init_from_parts=,")
        for part, source in loaded.items():
            getattr(pl_module, part).load_state_dict(source)
        log.info("init_from=%s: loaded %s", path, ", ".join(loaded))
