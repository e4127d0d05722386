"""Lightning's private names: where gan/ still leans on one, and where a public route replaced
one. Checked against Lightning 2.6.6. A Lightning upgrade that renames or drops a name fails
here, with the site to revisit named, rather than somewhere deep inside a run.

- `gan.core.stepping.log_boundary` replaced `trainer._logger_connector.should_update_logs`
  at five sites: it must answer the same on every batch of real runs.
- `gan.core.stepping.step_directly` calls `LightningOptimizer._on_before_step` and
  `_on_after_step` (no public route: they are the step counting `LightningOptimizer.step`
  does around the strategy, which the direct path skips on purpose)."""

from __future__ import annotations

import inspect
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer

from gan.core.stepping import log_boundary
from gan.runs.wiring import Interrupted, fit
from tests.conftest import FAST, compose_train

CHECKED = "2.6.6"  # the Lightning version the private names below were read in
# 8 batches of 16 per epoch
TINY = [*FAST, "model=mlp", "model.latent_dim=8", "model.generator.hidden=[16]",
        "model.discriminator.hidden=[16]", "callbacks.samples.every_n_epochs=null",
        "trainer.max_epochs=2"]
BATCHES = 8


def moved(name: str, site: str) -> str:
    return (f"Lightning {L.__version__} has no {name} (read in Lightning {CHECKED}): {site} "
            f"relies on it; read what the new Lightning does there and update the site")


def lightning_logs_now(trainer: L.Trainer) -> bool:
    """Lightning's own answer: the private property log_boundary stands in for."""
    connector = getattr(trainer, "_logger_connector", None)
    if not hasattr(type(connector), "should_update_logs"):
        raise AssertionError(moved("trainer._logger_connector.should_update_logs",
                                   "tests/test_lightning_api.py (the reference for "
                                   "gan.core.stepping.log_boundary)"))
    return connector.should_update_logs


class Compare(L.Callback):
    """Both answers at every place gan/ asks: on_train_start (Budget), the training step
    (GAN.training_step), on_train_batch_start and _end (the progress bar, Throughput, instance
    noise, Budget). Sits after the configured callbacks, so Budget's should_stop is set."""

    def __init__(self):
        self.rows: list[tuple[str, int, bool, bool]] = []

    def check(self, trainer, where: str) -> None:
        self.rows.append((where, trainer.fit_loop.total_batch_idx, log_boundary(trainer),
                          lightning_logs_now(trainer)))

    def on_train_start(self, trainer, pl_module):
        self.check(trainer, "on_train_start")
        step = pl_module.training_step

        def training_step(*args, **kwargs):
            self.check(trainer, "training_step")
            return step(*args, **kwargs)

        pl_module.training_step = training_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.check(trainer, "on_train_batch_start")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.check(trainer, "on_train_batch_end")

    def on_train_end(self, trainer, pl_module):
        del pl_module.training_step  # the class's again

    def agree(self) -> list[tuple[str, int, bool, bool]]:
        assert self.rows, "no training hook ran"
        disagree = [row for row in self.rows if row[2] != row[3]]
        assert not disagree, ("gan.core.stepping.log_boundary differs from Lightning's "
                              "should_update_logs at (hook, total_batch_idx, ours, Lightning's): "
                              f"{disagree[:8]}")
        return self.rows


class SaveAt(L.Callback):
    """Writes `path` after training batch `d_step`, as Resumable's step checkpoints do."""

    def __init__(self, d_step: int, path: Path):
        self.d_step, self.path = d_step, path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.d_step == self.d_step:
            trainer.save_checkpoint(self.path, weights_only=False)


def run(tmp_path: Path, name: str, *overrides: str, callbacks=()) -> Compare:
    compare = Compare()
    fit(compose_train([*TINY, *overrides], tmp_path / name), callbacks=[*callbacks, compare])
    return compare


def batches_logged(compare: Compare) -> list[int]:
    """The total batch indices whose training step is a log boundary."""
    return [idx for where, idx, ours, _ in compare.rows if where == "training_step" and ours]


@pytest.mark.parametrize("every", [1, 3, 50])
def test_log_boundary_is_lightnings_on_every_batch_fresh_and_resumed_mid_epoch(tmp_path, every):
    """A fresh run of 2 epochs of 8 batches, then its resume from a step checkpoint written
    mid-epoch (after batch 5, as Resumable's are). Every hook of every batch: the same answer
    as Lightning's."""
    log = f"trainer.log_every_n_steps={every}"
    total = 2 * BATCHES
    straight = run(tmp_path, "straight", log, callbacks=[SaveAt(5, tmp_path / "mid.ckpt")])
    straight.agree()
    assert batches_logged(straight) == [i for i in range(total) if (i + 1) % every == 0]

    mid = run(tmp_path, "mid", log, f"ckpt_path={tmp_path / 'mid.ckpt'}")
    assert mid.agree()[1][:2] == ("on_train_batch_start", 5)  # went on with the 6th batch
    assert batches_logged(mid) == [i for i in range(5, total) if (i + 1) % every == 0]


def test_log_boundary_is_lightnings_after_a_signal_and_after_an_epoch(tmp_path):
    """Resumed from the checkpoint a SIGTERM writes (after batch 11, mid-epoch 2) and from the
    checkpoint of epoch 1's end (Lightning restores its counters differently for each)."""
    log = "trainer.log_every_n_steps=3"
    stop = ["+callbacks.stop._target_=tests.test_resume.SignalAt", "+callbacks.stop.d_step=11",
            f"+callbacks.stop.signum={int(signal.SIGTERM)}"]
    with pytest.raises(Interrupted):
        run(tmp_path, "stopped", log, *stop)
    after_signal = run(tmp_path, "after_signal", log,
                       f"ckpt_path={tmp_path / 'stopped' / 'checkpoints' / 'last.ckpt'}")
    assert after_signal.agree()[1][:2] == ("on_train_batch_start", 11)
    assert batches_logged(after_signal) == [11, 14]

    run(tmp_path, "first", log, "trainer.max_epochs=1").agree()
    after_epoch = run(tmp_path, "after_epoch", log,
                      f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.ckpt'}")
    assert after_epoch.agree()[1][:2] == ("on_train_batch_start", BATCHES)
    assert batches_logged(after_epoch) == [8, 11, 14]


def test_log_boundary_is_lightnings_when_a_budget_stops_mid_epoch(tmp_path):
    """`budget=images` sets should_stop mid-epoch: the batch it stops at logs, in both."""
    compare = run(tmp_path, "budget", "trainer.log_every_n_steps=50", "budget=images",
                  "budget.value=208")  # 13 batches of 16
    rows = compare.agree()
    assert rows[-1][1:] == (12, True, True)  # the 13th batch, its end: should_stop
    assert batches_logged(compare) == []  # no boundary before it: 13 < 50


def test_log_every_n_steps_0_never_logs(tmp_path):
    compare = run(tmp_path, "never", "trainer.log_every_n_steps=0", "trainer.max_epochs=1")
    assert not any(ours for *_, ours, _ in compare.agree())


def test_lightning_optimizer_still_counts_steps_in_the_hooks_step_directly_calls():
    """gan.core.stepping.step_directly calls a LightningOptimizer's `_on_before_step` and
    `_on_after_step` around a raw optimizer step: in Lightning 2.6.6 `LightningOptimizer.step`
    calls them around the strategy's step, and manual optimisation installs there the progress
    counting that `trainer.global_step` reads (tests/test_thin.py checks that count)."""
    site = "gan/core/stepping.py (step_directly)"
    optimizer = LightningOptimizer(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))
    for name in ("_on_before_step", "_on_after_step"):
        # vars(): LightningOptimizer forwards unknown attributes to the wrapped optimizer
        assert callable(vars(optimizer).get(name)), moved(f"LightningOptimizer.{name}", site)
        assert f"self.{name}()" in inspect.getsource(LightningOptimizer.step), moved(
            f"a call of self.{name}() in LightningOptimizer.step", site)
    from lightning.pytorch.loops.optimization import manual

    installs = inspect.getsource(manual)
    for name in ("_on_before_step", "_on_after_step"):
        assert f"lightning_optimizer.{name} = self.{name}" in installs, moved(
            f"manual optimisation's lightning_optimizer.{name} = self.{name}", site)


def test_a_finished_run_resumed_runs_its_own_end_hooks_and_not_lightnings(tmp_path):
    """gan.runs.resume.finish_without_training, for a resume of a checkpoint that already
    reached the budget: the run's own callbacks write their final artefacts; Lightning's
    callbacks and subclasses of them (the tqdm bar `gan.train` uses where `rich` is not
    installed: its on_train_end closes a bar never opened) are left out."""
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import ModelCheckpoint

    from gan.runs.resume import Resumable, finish_without_training
    from gan.runs.thin import TQDMBoundaryBar

    ended = []

    class Own(L.Callback):
        def on_train_end(self, trainer, pl_module):
            ended.append(self)

    own = Own()
    trainer = SimpleNamespace(callbacks=[TQDMBoundaryBar(), ModelCheckpoint(dirpath=tmp_path),
                                         own, Resumable()])
    finish_without_training(trainer, None)
    assert ended == [own]
