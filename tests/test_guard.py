"""The divergence guard: a non-finite step changes nothing and is counted, a run that keeps
diverging stops with one line and status `diverged`, no checkpoint holds NaN, steps do not sync
with the device, and garbage final samples are flagged."""

from __future__ import annotations

import collections
import json
import logging

import lightning as L
import pytest
import torch
from torch import nn

import gan.core.guard
from gan.core.guard import Diverged, StepGuard, _step_then_restore, garbage_reason, guarded_step
from gan.io.artefacts import read_status
from gan.io.checkpoint import AtomicCheckpointIO, all_finite
from gan.runs.wiring import fit
from tests.conftest import FAST, needs_mnist, run_module

TINY = [*FAST, "model=mlp", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]"]


class PoisonD(L.Callback):
    """Sets D's weights to NaN from epoch `epoch` (0-based) on: every later step is non-finite,
    as after an overflow. Used through `+callbacks.poison._target_=tests.test_guard.PoisonD`."""

    def __init__(self, epoch: int = 1):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                for p in pl_module.discriminator.parameters():
                    p.fill_(float("nan"))


# ---------------------------------------------------------------- skipping a step exactly


def _net_and_grads(bad: bool):
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    net(torch.randn(4, 3)).sum().backward()
    if bad:
        net.weight.grad[0, 0] = float("nan")
    return net


def _snapshot(net, opt):
    state = [v.clone() for s in opt.state.values() for v in s.values() if torch.is_tensor(v)]
    return [p.detach().clone() for p in net.parameters()], state


@pytest.mark.parametrize("how", ["fused", "cpu_flag", "restore"])
def test_a_non_finite_step_changes_nothing_and_a_finite_one_is_adams(how):
    def make(net):
        return torch.optim.Adam(net.parameters(), lr=0.1, fused=how == "fused")

    def step(opt, ok):
        if how == "restore":  # the accelerator fallback, exercised on the CPU
            _step_then_restore(opt, opt, ok)
        else:
            guarded_step(opt, ok)

    # two finite steps, then a NaN one: weights and Adam state stay as after step two
    net = _net_and_grads(bad=False)
    opt = make(net)
    step(opt, torch.tensor(True))
    step(opt, torch.tensor(True))
    params, state = _snapshot(net, opt)
    net.weight.grad[0, 0] = float("nan")
    step(opt, torch.tensor(False))
    after_params, after_state = _snapshot(net, opt)
    for a, b in zip(params + state, after_params + after_state):
        assert torch.equal(a, b)
    # a finite step is exactly the optimizer's own step
    reference = _net_and_grads(bad=False)
    ref_opt = make(reference)
    ref_opt.step()
    guarded = _net_and_grads(bad=False)
    g_opt = make(guarded)
    step(g_opt, torch.tensor(True))
    for a, b in zip(reference.parameters(), guarded.parameters()):
        assert torch.equal(a, b)


def test_restore_of_a_skipped_first_step_leaves_zero_state():
    net = _net_and_grads(bad=True)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in net.parameters()]
    _step_then_restore(opt, opt, torch.tensor(False))
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    for state in opt.state.values():
        assert not state["exp_avg"].any() and not state["exp_avg_sq"].any()


# ---------------------------------------------------------------- counting and stopping


def test_guard_means_skip_count_and_stop():
    guard = StepGuard(max_consecutive_skips=3)
    ok, bad = torch.tensor(True), torch.tensor(False)
    guard.record("d", ok, {"d_loss": torch.tensor(1.0)})
    guard.record("d", bad, {"d_loss": torch.tensor(float("nan"))})
    guard.record("d", ok, {"d_loss": torch.tensor(3.0)})
    guard.record("g", bad, {"g_loss": torch.tensor(float("inf"))})
    values = {k: v.item() for k, v in guard.read().items()}
    assert values["d_loss"] == 2.0  # (1 + 3) / 2: the skipped step stays out of the mean
    assert values["g_loss"] != values["g_loss"]  # every G step skipped: NaN, not a fake number
    assert values["skipped_steps"] == 2
    guard.record("d", bad, {"d_loss": torch.tensor(float("nan"))})
    guard.record("d", bad, {"d_loss": torch.tensor(float("nan"))})
    guard.check()  # 2 in a row: goes on
    assert guard.read()["skipped_steps"].item() == 4  # the total goes on, too
    guard.record("d", bad, {"d_loss": torch.tensor(float("nan"))})  # the third in a row
    with pytest.raises(Diverged, match=r"3 D steps in a row.*optim\.lr_g / optim\.lr_d"):
        guard.check()


@pytest.mark.parametrize("fold_every", [1, 2, 256])
def test_guard_counts_runs_of_skips_across_folds(monkeypatch, fold_every):
    """However the steps are grouped into folds, a run of skips is counted whole, a finite
    step ends it, and batch values log their mean."""
    monkeypatch.setattr(gan.core.guard, "FOLD_EVERY", fold_every)
    guard = StepGuard(max_consecutive_skips=3)
    ok, bad = torch.tensor(True), torch.tensor(False)
    for flag in (bad, bad, ok, bad, bad):
        guard.record("d", flag, {"d_real": torch.tensor([[1.0], [3.0]]), "d_penalty": 0.0})
    values = guard.read()
    assert values["d_real"].item() == 2.0 and values["d_penalty"].item() == 0.0
    assert values["skipped_steps"].item() == 4
    guard.record("d", bad, {"d_real": torch.tensor([[1.0], [3.0]]), "d_penalty": 0.0})
    with pytest.raises(Diverged, match="3 D steps in a row"):
        guard.check()


def test_guard_record_runs_no_tensor_op_but_detach():
    """A step's record only lists its values: the sums are computed per window."""
    from torch.overrides import TorchFunctionMode

    class Ops(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.names.append(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))

    guard = StepGuard()
    loss = torch.tensor(1.0, requires_grad=True) * 2
    ok = torch.tensor(True)
    with Ops() as ops:
        for _ in range(3):
            guard.record("d", ok, {"d_loss": loss, "d_penalty": 0.0, "d_real": loss.detach()})
    assert set(ops.names) <= {"detach", "requires_grad", "__get__"}, ops.names
    assert guard.read()["d_loss"].item() == 2.0


def test_guard_refuses_a_bad_limit():
    with pytest.raises(ValueError, match="guard.max_consecutive_skips"):
        StepGuard(0)


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_with_nan_weights_is_not_written_and_the_old_one_stays(tmp_path, caplog):
    path = tmp_path / "last.ckpt"
    good = {"state_dict": {"w": torch.ones(3)}, "optimizer_states": [{"state": {}}], "epoch": 0}
    AtomicCheckpointIO().save_checkpoint(good, path)
    written = path.read_bytes()
    for part, where in (("state_dict", {"w": torch.tensor([1.0, float("nan"), 0.0])}),
                        ("optimizer_states", [{"state": {0: {"exp_avg_sq": torch.tensor(
                            [float("inf")])}}}])):
        bad = {**good, part: where, "epoch": 1}
        assert not all_finite(bad)
        with caplog.at_level(logging.WARNING):
            AtomicCheckpointIO().save_checkpoint(bad, path)
        assert path.read_bytes() == written
        assert "not writing" in caplog.text
    # callback states are not weights: ModelCheckpoint starts its best score at inf
    assert all_finite({**good, "callbacks": {"ModelCheckpoint": {"kth_value": torch.tensor(
        float("inf"))}}})


def test_divergence_stops_the_run_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    proc = run_module("gan.train", *TINY, "trainer.max_epochs=3", "guard.max_consecutive_skips=5",
                      "+callbacks.poison._target_=tests.test_guard.PoisonD",
                      f"hydra.run.dir={run}", cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gan.train:")]
    # logged (and checked) every step here: it stops on the 5th NaN step of epoch 2
    assert len(lines) == 1 and "5 D steps in a row" in lines[0]
    assert "optim.lr_g / optim.lr_d" in lines[0]
    status = read_status(run)
    assert status["status"] == "diverged" and "5 D steps in a row" in status["reason"]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 0 and all_finite(last)  # epoch 1's, written before the poison


def test_a_nan_checkpoint_is_refused_while_training_goes_on(fast_cfg, tmp_path, caplog):
    """With a high limit the run continues past the poison; fused Adam still counts its
    (skipped) steps, so ModelCheckpoint tries to save: the NaN weights are refused."""
    from gan.runs.wiring import fit

    cfg = fast_cfg(*TINY[len(FAST):], "trainer.max_epochs=2", "guard.max_consecutive_skips=1000",
                   "++optim.generator.fused=true", "++optim.discriminator.fused=true",
                   "+callbacks.poison._target_=tests.test_guard.PoisonD")
    with caplog.at_level(logging.WARNING):
        trainer, module = fit(cfg)
    assert "not writing" in caplog.text
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 0 and all_finite(last)
    assert module.guard.skipped_steps == 16  # epoch 2: 8 D and 8 G steps, all skipped
    assert last["gan_guard"] == {"skipped_steps": 0}  # the count goes on after a resume
    module.on_load_checkpoint({**last, "gan_guard": {"skipped_steps": 5}})
    assert module.guard.skipped_steps == 5
    assert float(trainer.logged_metrics["train/skipped_steps"]) == 16


# ---------------------------------------------------------------- no host sync per step


class _Host(torch.Tensor):
    """Marks the values a boundary copied to the host: turning those into numbers is free."""

    def __deepcopy__(self, memo):  # ModelCheckpoint deep-copies the logged metrics
        return self.detach().clone()


SYNCS = ("item", "__float__", "__int__", "__bool__", "tolist", "numpy")


@pytest.fixture
def count_syncs(monkeypatch):
    """Per training batch, how many times a tensor that is not a host copy became a number.
    On a GPU each of these waits for the device."""
    counts, where = collections.Counter(), {"batch": None}
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            if where["batch"] is not None and not isinstance(self, _Host):
                counts[where["batch"]] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def to_host(values):  # the boundary's device-to-host copy is a sync, too
        if where["batch"] is not None:
            counts[where["batch"]] += 1
        return values.cpu().as_subclass(_Host)

    monkeypatch.setattr(gan.core.guard, "to_host", to_host)
    tensor = torch.tensor

    def to_device(*args, **kwargs):  # a number copied to the device: Lightning logging a float
        if where["batch"] is not None and kwargs.get("device") is not None:
            counts[where["batch"]] += 1
        return tensor(*args, **kwargs)

    monkeypatch.setattr(torch, "tensor", to_device)

    class Mark(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            where["batch"] = batch_idx

    return counts, Mark(), where


DEFAULT_RUN = ["trainer.enable_progress_bar=true",  # every default callback, tricks that log
               "tricks=[ema,instance_noise,diffaugment,label_smoothing,r1,spectral_norm]"]


@pytest.mark.parametrize("extra", [["callbacks=[]"], DEFAULT_RUN], ids=["bare", "default"])
def test_training_steps_do_not_sync_between_boundaries(fast_cfg, count_syncs, extra):
    counts, mark, _ = count_syncs
    # fused Adam skips on the device; the default for-loop Adam on the CPU reads its step
    # counters with .item() (host tensors on a GPU) and the guard reads its flag (free on CPU).
    cfg = fast_cfg("model=mlp", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]",
                   "data.n=320", "trainer.log_every_n_steps=5",
                   "trainer.enable_progress_bar=true", "++optim.generator.fused=true",
                   "++optim.discriminator.fused=true", *extra)
    trainer, module = fit(cfg, callbacks=[mark])
    assert module.d_step == 20
    between = [b for b in range(19) if (b + 1) % 5]  # not a log boundary, not the epoch end
    assert [counts[b] for b in between] == [0] * len(between), dict(counts)
    assert all(counts[b] >= 1 for b in (4, 9, 14))  # the boundary check does read the device
    metrics = trainer.logged_metrics
    assert {"train/d_loss", "train/g_loss", "train/skipped_steps"} <= set(metrics)
    assert float(metrics["train/skipped_steps"]) == 0
    if extra == DEFAULT_RUN:  # what the callbacks and tricks log is there, too
        assert {"train/img_per_s", "train/instance_noise_sigma"} <= set(metrics)


def test_the_restore_fallback_does_not_sync(count_syncs):
    counts, _, where = count_syncs
    net = _net_and_grads(bad=True)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    before = [p.detach().clone() for p in net.parameters()]
    where["batch"] = 0  # count from here
    _step_then_restore(opt, opt, torch.isfinite(net.weight.grad).all())
    where["batch"] = None
    assert counts[0] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


# ---------------------------------------------------------------- garbage final samples


def test_garbage_reason_by_hand():
    assert garbage_reason({"val/fid": 50.0, "val/classes_covered": 10.0}, 400, 2) is None
    assert garbage_reason({"val/fid": 500.0, "val/classes_covered": 10.0}, 400, 2) == (
        "final FID 500 > guard.max_fid=400")
    reason = garbage_reason({"val/fid": 50.0, "val/classes_covered": 1.0}, 400, 2)
    assert "cover 1 class(es)" in reason and "guard.min_classes_covered=2" in reason
    assert garbage_reason({}, 400, 2).startswith("final samples could not be scored")
    assert garbage_reason({"val/fid": 500.0}, None, None) is None  # no ceiling: no flag


@needs_mnist
@pytest.mark.slow
def test_huge_learning_rate_on_mnist_ends_marked_diverged(tmp_path):
    run = tmp_path / "run"
    run_module("gan.train", "optim.lr_g=1e3", "optim.lr_d=1e3", "model=mlp",
               "trainer.max_epochs=1", "trainer.limit_train_batches=10",
               "trainer.enable_progress_bar=false", "callbacks.metrics.every_n_epochs=null",
               "callbacks.metrics.n_final=500", "callbacks.samples.every_n_epochs=null",
               f"hydra.run.dir={run}", cwd=tmp_path)
    status = read_status(run)
    assert status["status"] == "diverged", status
    assert "guard.max_fid" in status["reason"] or "guard.min_classes_covered" in status["reason"]
    report = json.loads((run / "metrics.json").read_text())
    assert report["metrics"]["fid"] > 400 or report["metrics"]["classes_covered"] < 2


@needs_mnist
def test_every_logged_value_is_a_host_tensor(fast_cfg, monkeypatch):
    """Lightning copies a logged Python number to the module's device (and the progress bar
    reads it back): the step scalars, throughput, a trick's value and the metrics all log
    host tensors instead."""
    logged = {}
    original = L.LightningModule.log

    def spy(self, name, value, *args, **kwargs):
        logged[name] = value
        return original(self, name, value, *args, **kwargs)

    monkeypatch.setattr(L.LightningModule, "log", spy)
    cfg = fast_cfg("model=mlp", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]",
                   "data=mnist", "data.batch_size=64", "trainer.limit_train_batches=4",
                   "tricks=[ema,instance_noise]", "trainer.log_every_n_steps=2",
                   "callbacks.metrics.n=200", "callbacks.metrics.n_final=200", fake_data=False)
    fit(cfg)
    assert {"train/d_loss", "train/img_per_s", "train/instance_noise_sigma", "train/d_step",
            "val/fid"} <= set(logged)
    bad = {k: type(v).__name__ for k, v in logged.items()
           if not (torch.is_tensor(v) and v.device.type == "cpu")}
    assert not bad, bad
