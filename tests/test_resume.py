"""Nothing lost, nothing silent: exact resume after a kill, SIGTERM/Ctrl-C, final artefacts,
status.json, and one-line errors for checkpoints that cannot be used. Real `python -m gan.train`
subprocesses, killed with real signals."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gan.io.artefacts import update_status
from gan.io.checkpoint import CheckpointError, load_checkpoint
from gan.runs.wiring import Interrupted, fit
from gan.sampling.sampler import Sampler
from tests.conftest import FAST, child_env, compose_train, needs_mnist, run_module

TINY = [*FAST, "model=mlp", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]",
        "callbacks.samples.every_n_epochs=null"]
ENV = child_env()


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gan.train", *args], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not path.is_file():
        assert proc.poll() is None, f"run ended before {path} appeared:\n{proc.stdout.read()}"
        assert time.monotonic() < end, f"{path} did not appear in {timeout} s"
        time.sleep(0.05)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def max_weight_diff(a: dict, b: dict) -> float:
    """Largest |a - b| over every generator/discriminator/EMA tensor and optimizer state."""
    keys = [k for k in a["state_dict"] if k.startswith(("generator", "discriminator",
                                                          "spectral_norm"))]
    assert keys and set(keys) <= set(b["state_dict"])
    diffs = [(a["state_dict"][k].float() - b["state_dict"][k].float()).abs().max().item()
             for k in keys]
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for i, state in opt_a["state"].items():
            for name in ("exp_avg", "exp_avg_sq"):
                diffs.append((state[name] - opt_b["state"][i][name]).abs().max().item())
    return max(diffs)


def scalars(run_dir: Path, tag: str) -> dict[int, float]:
    """{step: value} of a TensorBoard scalar, from every event file in `run_dir`."""
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)}


@pytest.mark.slow
@pytest.mark.parametrize("case,extra", [
    # killed after an epoch's checkpoint; instance noise draws from the global RNG
    ("epoch", ["tricks=[instance_noise,ema]", "trainer.max_epochs=6"]),
    # killed after a mid-epoch step checkpoint (every 3 of 8 batches); DiffAugment draws too
    ("mid-epoch", ["tricks=[diffaugment,spectral_norm]", "trainer.max_epochs=4",
                   "save_every_n_batches=3", "callbacks.last.every_n_epochs=1000"]),
])
def test_kill_and_resume_is_bit_exact(tmp_path, case, extra):
    straight = tmp_path / "straight"
    run_module("gan.train", *TINY, *extra, f"hydra.run.dir={straight}", cwd=tmp_path)
    killed = tmp_path / "killed"
    proc = start(*TINY, *extra, f"hydra.run.dir={killed}", cwd=tmp_path)
    ckpt = killed / "checkpoints" / "last.ckpt"
    wait_for(ckpt, proc)
    proc.send_signal(signal.SIGKILL)  # no handler runs: what the next start finds is all
    assert proc.wait() == -signal.SIGKILL
    at = load(ckpt)
    total = load(straight / "checkpoints" / "last.ckpt")["gan_counters"]["d_step"]
    assert 0 < at["gan_counters"]["d_step"] < total  # the kill came mid-run
    if case == "mid-epoch":
        assert at["gan_counters"]["d_step"] % 8 != 0  # inside an epoch of 8 batches
    resumed = tmp_path / "resumed"
    run_module("gan.train", *TINY, *extra, f"ckpt_path={ckpt}", f"hydra.run.dir={resumed}",
               cwd=tmp_path)
    a, b = load(straight / "checkpoints" / "last.ckpt"), load(resumed / "checkpoints" / "last.ckpt")
    assert a["gan_counters"] == b["gan_counters"] == {"d_step": total, "g_step": total}
    assert max_weight_diff(a, b) == 0.0
    # every loss logged after the resume is the loss the uninterrupted run logged at that step
    for tag in ("train/d_loss", "train/g_loss"):
        before, after = scalars(straight, tag), scalars(resumed, tag)
        assert after and set(after) <= set(before)
        assert min(after) > 0 and max(after) == max(before)
        assert {s: before[s] for s in after} == after


class SignalAt(L.Callback):
    """Sends this process `signum` after D step `d_step`, as a scheduler or Ctrl-C would, at a
    moment the test chooses (`+callbacks.stop._target_=tests.test_resume.SignalAt`)."""

    def __init__(self, d_step: int, signum: int):
        self.d_step, self.signum = d_step, signum

    def on_train_batch_end(self, trainer, pl_module, *args):
        if pl_module.d_step == self.d_step:
            os.kill(os.getpid(), self.signum)


class StatusWatch(L.Callback):
    """Reads status.json after every batch, as a sweep index or `gan.report` would."""

    seen: list[dict] = []

    def on_train_batch_end(self, trainer, *args):
        StatusWatch.seen.append(json.loads((Path(trainer.default_root_dir) / "status.json")
                                           .read_text()))


def _fit(tmp_path: Path, name: str, *overrides: str):
    return fit(compose_train([*TINY, *overrides], tmp_path / name))


@pytest.mark.parametrize("signum,stop_at", [(signal.SIGTERM, 11), (signal.SIGINT, 8)],
                         ids=["SIGTERM-mid-epoch", "SIGINT-epoch-end"])
def test_interrupted_run_resumes_bit_exact(tmp_path, signum, stop_at):
    """Stopped by a real signal at D step `stop_at` (11: batch 3 of epoch 2; 8: the last batch
    of epoch 1), then resumed: weights, optimizer moments, counters and every logged loss equal
    those of the uninterrupted run. DiffAugment and instance noise draw from the global RNG."""
    extra = ["tricks=[diffaugment,instance_noise,ema]", "trainer.max_epochs=3"]
    trainer, _ = _fit(tmp_path, "straight", *extra)
    straight = load(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    stop = [f"+callbacks.stop._target_={__name__}.SignalAt", f"+callbacks.stop.d_step={stop_at}",
            f"+callbacks.stop.signum={int(signum)}"]
    with pytest.raises(Interrupted) as stopped:
        _fit(tmp_path, "stopped", *extra, *stop)
    assert stopped.value.code == 128 + signum
    ckpt = tmp_path / "stopped" / "checkpoints" / "last.ckpt"
    assert load(ckpt)["gan_counters"] == {"d_step": stop_at, "g_step": stop_at}
    status = json.loads((tmp_path / "stopped" / "status.json").read_text())
    assert status["status"] == "interrupted" and status["d_step"] == stop_at
    _fit(tmp_path, "resumed", *extra, f"ckpt_path={ckpt}")
    resumed = load(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert resumed["gan_counters"] == straight["gan_counters"] == {"d_step": 24, "g_step": 24}
    assert max_weight_diff(straight, resumed) == 0.0
    for tag in ("train/d_loss", "train/g_loss"):
        before, after = scalars(tmp_path / "straight", tag), scalars(tmp_path / "resumed", tag)
        assert len(after) == 24 - stop_at and set(after) <= set(before)
        assert {s: before[s] for s in after} == after


def test_resume_without_rng_state_would_differ(tmp_path):
    """The check above can fail: the same resume with the RNG states dropped from the
    checkpoint draws other noise and ends with other weights."""
    extra = ["tricks=[instance_noise]", "trainer.max_epochs=2"]
    _fit(tmp_path, "straight", *extra)
    _fit(tmp_path, "first", "tricks=[instance_noise]", "trainer.max_epochs=1")
    ckpt = load(tmp_path / "first" / "checkpoints" / "last.ckpt")
    del ckpt["rng_states"]
    torch.save(ckpt, tmp_path / "no_rng.ckpt")
    _fit(tmp_path, "resumed", *extra, f"ckpt_path={tmp_path / 'no_rng.ckpt'}")
    a = load(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    b = load(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert max_weight_diff(a, b) > 0


def test_sigterm_to_a_real_run_saves_this_step_and_exits_nonzero(tmp_path):
    """A scheduler's preemption: SIGTERM to `python -m gan.train` mid-epoch."""
    run_dir = tmp_path / "run"
    proc = start(*TINY, "trainer.max_epochs=50", "save_every_n_batches=3",
                 f"hydra.run.dir={run_dir}", cwd=tmp_path)
    wait_for(run_dir / "checkpoints" / "last.ckpt", proc)  # training is under way
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted" and status["signal"] == "SIGTERM"
    ckpt = load(run_dir / "checkpoints" / "last.ckpt")
    assert ckpt["gan_counters"]["d_step"] == status["d_step"] >= 3
    line = next(x for x in out.splitlines() if "Resume with:" in x)
    assert f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}" in line
    assert f"hydra.run.dir={run_dir}" in line and "save_every_n_batches=3" in line
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


def test_status_running_then_done_or_failed(tmp_path):
    from gan.train import main

    cfg = compose_train([*TINY, "trainer.max_epochs=2", f"+callbacks.watch._target_={__name__}"
                         ".StatusWatch"], tmp_path / "ok")
    StatusWatch.seen.clear()
    main.__wrapped__(cfg)
    seen = StatusWatch.seen
    assert seen[0]["status"] == "running" and seen[0]["g_step"] == 0
    assert seen[-1]["status"] == "running" and seen[-1]["g_step"] == 8  # the epoch-1 checkpoint
    status = json.loads((tmp_path / "ok" / "status.json").read_text())
    assert (status["status"], status["g_step"], status["d_step"]) == ("done", 16, 16)
    cfg = compose_train([*TINY, "tricks=[label_smoothing]", "loss=hinge"], tmp_path / "bad")
    with pytest.raises(SystemExit) as exit_:  # bad input: one line, exit code 2
        main.__wrapped__(cfg)
    assert exit_.value.code == 2
    status = json.loads((tmp_path / "bad" / "status.json").read_text())
    assert status["status"] == "failed" and "label_smoothing" in status["error"]
    assert "\n" not in status["error"]


@needs_mnist
def test_kill_after_last_checkpoint_still_writes_final_metrics(tmp_path, caplog):
    args = ["trainer.max_epochs=2", "trainer.limit_train_batches=4", "data=mnist",
            "data.batch_size=16", "callbacks.metrics.n=200", "callbacks.metrics.n_final=300",
            "metric=val/fid", "guard.max_fid=1e9", "guard.min_classes_covered=0"]
    run_dir = tmp_path / "run"  # (so few steps make garbage: the guard would flag it diverged)
    tiny = [o for o in TINY if not o.startswith("data")]
    fit(compose_train([*tiny, *args], run_dir))
    first = json.loads((run_dir / "metrics.json").read_text())
    # what a kill between the last checkpoint and the final metrics leaves behind
    (run_dir / "metrics.json").unlink()
    (run_dir / "samples" / "final.png").unlink()
    (run_dir / "status.json").unlink()
    cfg = compose_train([*tiny, *args, f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"],
                        run_dir)
    from gan.train import main

    value = main.__wrapped__(cfg)
    report = json.loads((run_dir / "metrics.json").read_text())
    assert report == first  # the same samples of the same weights: the same scores
    assert value == report["metrics"]["fid"] > 0  # what a sweeper gets back
    assert (run_dir / "samples" / "final.png").stat().st_size > 0
    assert json.loads((run_dir / "status.json").read_text())["status"] == "done"


# ---- checkpoints that cannot be used: one clear line each -------------------------------------

@pytest.fixture(scope="module")
def good_ckpt(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("src")
    fit(compose_train([*TINY, "trainer.limit_train_batches=2"], run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


def bad_files(good: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    data = good.read_bytes()
    truncated, noise, foreign = tmp / "truncated.ckpt", tmp / "noise.ckpt", tmp / "foreign.pt"
    truncated.write_bytes(data[: len(data) // 2])
    noise.write_bytes(os.urandom(4096))
    torch.save({"weight": torch.zeros(3)}, foreign)
    return {"truncated": (truncated, "is not a readable gan.train checkpoint"),
            "random bytes": (noise, "is not a readable gan.train checkpoint"),
            "foreign": (foreign, "is a torch file but not a checkpoint written by gan.train")}


def test_bad_checkpoint_is_one_clear_line_everywhere(good_ckpt, tmp_path):
    for name, (path, message) in bad_files(good_ckpt, tmp_path).items():
        for key in ("load_checkpoint", "Sampler", "ckpt_path", "init_from"):
            with pytest.raises(CheckpointError) as err:
                if key == "load_checkpoint":
                    load_checkpoint(path)
                elif key == "Sampler":  # gan.generate, gan.evaluate
                    Sampler(path)
                else:  # gan.train: Lightning's resume, or transfer
                    fit(compose_train([*TINY, f"{key}={path}"], tmp_path / name))
            text = str(err.value)
            assert message in text and "\n" not in text, (name, text)
            assert "weights_only=False" not in text and "=" + str(path) in text, (name, text)
    assert load_checkpoint(good_ckpt)["gan_counters"]["d_step"] == 2  # the intact file loads


def test_bad_checkpoint_from_the_command_line(good_ckpt, tmp_path):
    path, message = bad_files(good_ckpt, tmp_path)["truncated"]
    proc = run_module("gan.train", *TINY, f"ckpt_path={path}", f"hydra.run.dir={tmp_path}",
                      cwd=tmp_path, check=False)
    err = proc.stderr + proc.stdout
    assert proc.returncode != 0 and message in err and "weights_only=False" not in err


def test_model_mismatch_names_the_config_keys(good_ckpt, tmp_path):
    cfg = compose_train([*TINY, "model.generator.hidden=[48]", f"ckpt_path={good_ckpt}"],
                        tmp_path / "a")
    with pytest.raises(CheckpointError) as err:
        fit(cfg)
    text = str(err.value)
    assert "was trained with another model: model.generator.hidden=[32] (checkpoint) vs [48] " \
           "(this run)" in text
    assert "size mismatch" not in text and "\n" not in text
    cfg = compose_train([*TINY[:-4], "callbacks.samples.every_n_epochs=null", "model=dcgan",
                         f"ckpt_path={good_ckpt}"], tmp_path / "b")
    with pytest.raises(CheckpointError, match=r"model\.discriminator\._target_=gan\.networks\."
                                              r"mlp\.\w+ \(checkpoint\) vs gan\.networks\.dcgan"):
        fit(cfg)


def test_shuffled_batches_resume_inside_an_epoch():
    from gan.data.images import ShuffledBatches

    images, labels = torch.arange(60).view(60, 1, 1, 1).to(torch.uint8), torch.arange(60)
    straight = ShuffledBatches(images, labels, batch_size=10, seed=3)
    straight.set_epoch(2)
    epoch2 = [y for _, y in straight]
    stopped = ShuffledBatches(images, labels, batch_size=10, seed=3)
    stopped.set_epoch(2)
    it = iter(stopped)
    seen = [next(it)[1] for _ in range(4)]
    state = stopped.state_dict()
    assert state == {"epoch": 2, "served": 4}
    resumed = ShuffledBatches(images, labels, batch_size=10, seed=3)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # Lightning: the epoch in progress
    rest = [y for _, y in resumed]
    assert torch.equal(torch.cat(seen + rest), torch.cat(epoch2))
    resumed.load_state_dict({"epoch": 1, "served": 6})  # a finished epoch: start the next whole
    resumed.set_epoch(2)
    assert torch.equal(torch.cat([y for _, y in resumed]), torch.cat(epoch2))


@pytest.mark.slow
def test_kill_loop(tmp_path):
    """benchmarks/kill_loop.py, shortened: kill -9 at random moments, resume, lose <= 1 interval."""
    proc = subprocess.run([sys.executable, "benchmarks/kill_loop.py", "--trials", "4",
                           "--dir", str(tmp_path)], cwd=Path(__file__).parent.parent, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 kills: 4 resumed from an intact checkpoint" in proc.stdout


def test_skip_done_keeps_finished_runs_and_resumes_cut_ones(tmp_path, caplog):
    """A rerun sweep or study (`skip_done=true`): a finished job is not trained again, and one
    cut by a kill goes on from its last checkpoint."""
    from gan.train import main

    run_dir = tmp_path / "job"
    cfg = compose_train([*TINY, "skip_done=true", "metric=train/g_loss"], run_dir)
    first = main.__wrapped__(cfg)
    last = run_dir / "checkpoints" / "last.ckpt"
    stamp = last.stat().st_mtime_ns
    assert json.loads((run_dir / "status.json").read_text())["status"] == "done"
    with caplog.at_level(logging.INFO, logger="gan.train"):
        again = main.__wrapped__(compose_train([*TINY, "skip_done=true"], run_dir))
    assert "already finished" in caplog.text and last.stat().st_mtime_ns == stamp
    assert again is None and first is not None  # no metrics.json on fake data: nothing to return
    # what a kill -9 leaves: a checkpoint and a status still `running`
    update_status(run_dir, status="running")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gan.train"):
        main.__wrapped__(compose_train([*TINY, "skip_done=true", "trainer.max_epochs=2"],
                                       run_dir))
    assert f"resuming the cut run in {run_dir}" in caplog.text
    status = json.loads((run_dir / "status.json").read_text())
    assert (status["status"], status["d_step"]) == ("done", 16)


def test_interrupted_survives_pickling():
    # A joblib job's exception travels to the sweep process pickled; without this the sweep
    # died with "A result has failed to un-serialize" and took the other jobs down mid-write.
    import pickle

    from gan.runs.wiring import Interrupted

    stop = pickle.loads(pickle.dumps(Interrupted("SIGTERM", Path("run/last.ckpt"))))
    assert (stop.signal_name, stop.ckpt_path, stop.code) == ("SIGTERM", Path("run/last.ckpt"), 143)


def test_a_rank_the_checkpoint_did_not_save_gets_its_own_stream():
    """Resumed on more ranks than saved: rank 0 continues its stream; every new rank draws its
    own z (not rank 0's again), the same on every resume."""
    import random

    from gan.core.rng import restore_rank_stream, rng_state

    torch.manual_seed(3)
    random.seed(3)
    saved = {0: rng_state()}
    expected = torch.randn(4)
    draws = {}
    for rank in (0, 1, 2, 1):
        restore_rank_stream(saved, rank)
        draws.setdefault(rank, []).append((torch.randn(4), random.random()))
    assert torch.equal(draws[0][0][0], expected)  # the saved rank: its own stream goes on
    z = {rank: values[0][0] for rank, values in draws.items()}
    assert not torch.equal(z[1], z[0]) and not torch.equal(z[2], z[1])
    assert draws[1][0][1] != draws[0][0][1]  # python's stream too
    assert torch.equal(draws[1][0][0], draws[1][1][0])  # reproducible across resumes
