"""Runs that can stop anywhere and go on exactly: RNG states, step checkpoints, interruption,
status.json, and the final artefacts of a run killed after its last checkpoint.

What decides the next step, and where a checkpoint keeps it:
- weights, optimizer states, EMA copy, fixed noise: Lightning's `state_dict`/`optimizer_states`;
- G and D step counters: `gan_counters` (gan/core/module.py);
- the data position (epoch and batch within it): Lightning's `loops` + ShuffledBatches' state;
- the random streams z, DiffAugment, instance noise, GP eps, dropout draw from: `rng_states`,
  one entry per global rank (python, numpy, torch CPU, every CUDA device), taken when the
  checkpoint is written and put back just before the first resumed step.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import lightning as L
from lightning.pytorch import callbacks as lightning_callbacks
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gan.io.artefacts import update_status
from gan.io.checkpoint import remove_stale_temps
from gan.runs.folder import resume_line

log = logging.getLogger(__name__)


def checkpoint_dir(trainer: L.Trainer) -> Path:
    return Path(trainer.default_root_dir) / "checkpoints"


class Resumable(Checkpoint):
    """Always on in gan.train (not a config callback: resuming must not depend on one).

    - `every_n_batches`: also write `checkpoints/last.ckpt` every n training batches, so a long
      epoch killed halfway loses at most n batches (config key `save_every_n_batches`);
    - SIGTERM (a scheduler's preemption, `kill`) or Ctrl-C: finish the current batch, write
      `checkpoints/last.ckpt` at that step, mark the run `interrupted`; gan.train then prints
      the command that resumes it and exits non-zero (a second Ctrl-C stops at once);
    - status.json: `running` (with g_step, d_step) at the start and at every checkpoint;
    - removes partial checkpoint files a killed write left behind.

    A Lightning `Checkpoint`, so the Trainer runs its hooks after every other callback's: a
    checkpoint written here holds the EMA update and counters of the batch just finished."""

    def __init__(self, every_n_batches: int | None = None):
        if every_n_batches is not None and every_n_batches < 1:
            raise ValueError(f"save_every_n_batches must be >= 1 or null, got {every_n_batches}")
        self.every_n_batches = every_n_batches
        self.started = False  # fit reached on_train_start (Lightning skips it at budget's end)
        self.signal: str | None = None
        self._previous_sigint = None
        self.trained = False  # a whole batch has been trained: from here a signal saves a step
        self.in_batch = False  # inside a training batch: a signal waits for its end (Lightning)

    @property
    def last_path(self) -> Path:
        return checkpoint_dir(self._trainer) / "last.ckpt"

    def setup(self, trainer, pl_module, stage):
        self._trainer = trainer
        if trainer.is_global_zero and checkpoint_dir(trainer).is_dir():
            remove_stale_temps(checkpoint_dir(trainer))

    def _status(self, pl_module, **fields) -> None:
        if self._trainer.is_global_zero:
            update_status(self._trainer.default_root_dir, g_step=pl_module.g_step,
                          d_step=pl_module.d_step, epoch=self._trainer.current_epoch, **fields)

    def on_train_start(self, trainer, pl_module):
        self.started = True
        self._status(pl_module, status="running")
        if threading.current_thread() is threading.main_thread():  # (signals: main thread only)
            self._previous_sigint = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame):
        # Ctrl-C raises KeyboardInterrupt wherever the step is (between D's and G's update,
        # say); saving then would not resume exactly. Go Lightning's SIGTERM way instead: it
        # stops after the batch. A second Ctrl-C interrupts at once.
        self.signal = "SIGINT"
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.raise_signal(signal.SIGTERM)

    def _restore_sigint(self):
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_train_end(self, trainer, pl_module):
        self._restore_sigint()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.in_batch = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.trained, self.in_batch = True, False
        n = self.every_n_batches
        if n and (batch_idx + 1) % n == 0 and batch_idx + 1 < trainer.num_training_batches:
            # the epoch's end has its own save
            trainer.save_checkpoint(self.last_path, weights_only=False)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self._status(pl_module, status="running")

    def on_exception(self, trainer, pl_module, exception):
        self._restore_sigint()
        if isinstance(exception, Interrupted):  # stopped outside a batch: its checkpoint stands
            self._status(pl_module, status="interrupted", signal=exception.signal_name,
                         ckpt_path=str(exception.ckpt_path))
            return
        if not isinstance(exception, SIGTERMException):
            return  # a failure, or a second Ctrl-C mid-step: gan.train records it
        self.signal = self.signal or "SIGTERM"
        # Lightning raised this after a whole batch (or epoch): a consistent point to save.
        trainer.save_checkpoint(self.last_path, weights_only=False)
        self._status(pl_module, status="interrupted", signal=self.signal,
                     ckpt_path=str(self.last_path))


class Interrupted(SystemExit):
    """SIGTERM or Ctrl-C stopped training; `ckpt_path` resumes it (a checkpoint written at this
    step, or, stopped outside a batch, the last one written)."""

    def __init__(self, signal_name: str, ckpt_path: Path):
        super().__init__(130 if signal_name == "SIGINT" else 143)  # 128 + the signal's number
        self.signal_name, self.ckpt_path = signal_name, ckpt_path

    def __reduce__(self):  # a joblib job sends it to the sweep process: rebuild from these
        return type(self), (self.signal_name, self.ckpt_path)


class SetupInterrupted(SystemExit):
    """SIGTERM or Ctrl-C before the first batch was trained (data loading, clustering,
    compilation): the run stops at once; nothing was trained, and every file is whole."""

    def __init__(self, signal_name: str):
        super().__init__(130 if signal_name == "SIGINT" else 143)
        self.signal_name = signal_name

    def __reduce__(self):
        return type(self), (self.signal_name,)


_active: list[Resumable] = []  # the run this process trains now (set by wiring._train)


def on_signal(signum, frame) -> None:
    """gan.train's SIGTERM/SIGINT handler, from its start, so a signal stops the run within
    seconds in any phase. Lightning calls it after its own (which asks the loop to stop after
    the batch):
    - before the first batch is trained: raise SetupInterrupted now;
    - inside a batch: return; Lightning stops after it, Resumable saves that step;
    - outside a batch (evaluation, checkpoint writing, the final metrics) with a checkpoint
      already written: raise Interrupted now; that checkpoint resumes the run (at most one
      checkpoint interval lost, as after kill -9). Without one, the next batch boundary."""
    run = _active[-1] if _active else None
    name = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
    if run is not None:
        run.signal = name = run.signal or name
    if run is None or not run.trained:
        raise SetupInterrupted(name)
    if run.in_batch or not run.last_path.is_file():
        return
    raise Interrupted(name, run.last_path)


def stop_on_signals() -> None:
    """Install on_signal for SIGTERM and Ctrl-C (main thread only: Python's rule)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)


def finish_without_training(trainer: L.Trainer, module: L.LightningModule) -> None:
    """Lightning skips fit, on_train_end included, when a resumed checkpoint has already reached
    the budget (max_epochs/max_steps). A run killed between its last checkpoint and its final
    metrics would then never write metrics.json and samples/final.png: run the end-of-training
    hooks of the run's own callbacks (not Lightning's: progress bar, checkpointing)."""
    log.info("the checkpoint already reached the budget: writing the final artefacts only")
    for callback in trainer.callbacks:
        if not isinstance(callback, LIGHTNINGS):
            callback.on_train_end(trainer, module)


# Lightning's own callbacks, every class `lightning.pytorch.callbacks` exports but the base,
# and subclasses of them (our progress bars; Resumable, whose on_train_end only undoes its
# on_train_start): their end-of-training hooks assume a fit ran (TQDMProgressBar's closes a
# bar that was never opened, a TypeError).
LIGHTNINGS = tuple(
    cls for cls in map(lightning_callbacks.__dict__.get, lightning_callbacks.__all__)
    if isinstance(cls, type) and issubclass(cls, L.Callback) and cls is not L.Callback)


def resume_command(ckpt_path: Path) -> str:
    """The command line that resumes this run (same overrides, same run dir), quoted so that it
    runs as printed: a sweep job's folder name holds `=`, which Hydra reads unquoted as syntax."""
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    return resume_line(list(hydra.overrides.task), hydra.runtime.output_dir, ckpt_path)
