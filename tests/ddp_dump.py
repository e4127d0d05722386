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


class CountScores(L.Callback):
    """Every rank writes how many times it scored samples (the Metrics callback's `_score`)
    and the val/ values it logged, so the test can check that only rank 0 scores."""

    def __init__(self, out: str):
        self.out = Path(out)
        self.calls = 0

    def setup(self, trainer, pl_module, stage):
        metrics = next(c for c in trainer.callbacks if type(c).__name__ == "Metrics")
        score = metrics._score

        def counted(*args, **kwargs):
            self.calls += 1
            return score(*args, **kwargs)

        metrics._score = counted

    def on_train_epoch_end(self, trainer, pl_module):
        self.logged = {k: float(v) for k, v in trainer.callback_metrics.items()
                       if k.startswith("val/")}

    def on_train_end(self, trainer, pl_module):
        self.out.mkdir(parents=True, exist_ok=True)
        torch.save({"calls": self.calls, "logged": getattr(self, "logged", {})},
                   self.out / f"scores{trainer.global_rank}.pt")
