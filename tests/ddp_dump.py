"""A test-only callback (used by test_ddp.py through a Hydra override): every rank saves its
discriminator weights and one noise draw, so the test can compare ranks."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch


class DumpPerRank(L.Callback):
    def __init__(self, out: str):
        self.out = Path(out)

    def on_train_start(self, trainer, pl_module):
        self.z = pl_module.noise(8).cpu()  # after the module's per-rank noise offset

    def on_train_end(self, trainer, pl_module):
        self.out.mkdir(parents=True, exist_ok=True)
        torch.save({"d": {k: v.cpu() for k, v in pl_module.discriminator.state_dict().items()},
                    "z": self.z}, self.out / f"rank{trainer.global_rank}.pt")
