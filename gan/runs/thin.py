"""Lightning's per-batch host work kept thin, with nothing a user sees lost (issue 20):

- `idle_hooks_off`: Lightning dispatches every per-batch hook to every callback, entering a
  profiler context and building the callback's `state_key` string each time, whether the
  callback overrides the hook or not (about 15 callbacks x 2-8 hooks per batch in `gan.train`).
  Its dispatcher skips a hook attribute that is not callable, so a callback's per-batch hooks
  that it does not override are set to None on the instance: the dispatch loop then pays a
  getattr for them, nothing more. A callback that overrides a hook keeps it.
- `progress_bar()`: Lightning's bar with its per-batch work (metrics read, bar redrawn) done
  at log boundaries (`trainer.log_every_n_steps`, when the logged values change anyway) and at
  an epoch's last batch. The Rich bar also repaints from its own thread: 2 times a second,
  not Lightning's 100, which on 2 CPU cores took time from the training step.
"""

from __future__ import annotations

from collections.abc import Iterable

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.utilities.model_helpers import is_overridden

from gan.core.stepping import log_boundary

PER_BATCH = ("on_train_batch_start", "on_train_batch_end", "on_before_backward",
             "on_after_backward", "on_before_optimizer_step", "on_before_zero_grad")


def idle_hooks_off(callbacks: Iterable[L.Callback]) -> None:
    """Per-batch hooks a callback does not override: None on the instance (see above)."""
    for callback in callbacks:
        for hook in PER_BATCH:
            if not is_overridden(hook, callback, L.Callback):
                setattr(callback, hook, None)


class _OnBoundaries:
    """A progress bar whose per-batch update runs at log boundaries and an epoch's end."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (log_boundary(trainer)
                or batch_idx + 1 == trainer.num_training_batches):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class RichBoundaryBar(_OnBoundaries, RichProgressBar):
    def __init__(self, refresh_rate: int = 2):  # repaints per second from Rich's thread
        super().__init__(refresh_rate=refresh_rate)


class TQDMBoundaryBar(_OnBoundaries, TQDMProgressBar):
    pass


def progress_bar() -> L.Callback:
    """The bar Lightning would pick (Rich where installed, else tqdm), updated on boundaries.
    `RichProgressBar` raises ModuleNotFoundError without the `rich` version it needs (its
    documented check, the one Lightning's own choice of bar makes)."""
    try:
        return RichBoundaryBar()
    except ModuleNotFoundError:
        return TQDMBoundaryBar()
