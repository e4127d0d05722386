"""Nothing lost, nothing silent: exact resume after a kill, SIGTERM/Ctrl-C, final artefacts,
status.json, and one-line errors for checkpoints that cannot be used. Real `python -m gan.train`
subprocesses, killed with real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import FAST, needs_mnist, run_module

TINY = [*FAST, "model=mlp", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]",
        "callbacks.samples.every_n_epochs=null"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


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


def test_sigterm_saves_this_step_and_resume_finishes(tmp_path):
    args = [*TINY, "trainer.max_epochs=50", "tricks=[instance_noise]"]
    run_dir = tmp_path / "run"
    proc = start(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    wait_for(run_dir / "checkpoints" / "last.ckpt", proc)  # training is under way
    time.sleep(0.3)  # and now mid-epoch, somewhere
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted" and status["signal"] == "SIGTERM"
    ckpt = load(run_dir / "checkpoints" / "last.ckpt")
    assert ckpt["gan_counters"]["d_step"] == status["d_step"] > 0
    line = next(x for x in out.splitlines() if "Resume with:" in x)
    assert f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}" in line
    assert f"hydra.run.dir={run_dir}" in line and "trainer.max_epochs=50" in line
    # resume in the same run dir, as the printed line says, with a smaller budget to finish
    shorter = [a for a in args if not a.startswith("trainer.max_epochs")]
    epochs = ckpt["gan_counters"]["d_step"] // 8 + 1
    run_module("gan.train", *shorter, f"trainer.max_epochs={epochs}",
               f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
               f"hydra.run.dir={run_dir}", cwd=tmp_path)
    done = json.loads((run_dir / "status.json").read_text())
    assert done["status"] == "done" and done["d_step"] == epochs * 8
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


def test_sigint_stops_after_the_batch_and_saves(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(*TINY, "trainer.max_epochs=50", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    wait_for(run_dir / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted" and status["signal"] == "SIGINT"
    assert load(run_dir / "checkpoints" / "last.ckpt")["gan_counters"]["d_step"] == (
        status["d_step"])


def test_status_running_then_done_and_failed(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(*TINY, "trainer.max_epochs=3", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    wait_for(run_dir / "status.json", proc)
    assert json.loads((run_dir / "status.json").read_text())["status"] == "running"
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    status = json.loads((run_dir / "status.json").read_text())
    assert status == {**status, "status": "done", "g_step": 24, "d_step": 24}
    bad = tmp_path / "bad"
    proc = run_module("gan.train", *TINY, "tricks=[label_smoothing]", "loss=hinge",
                      f"hydra.run.dir={bad}", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    status = json.loads((bad / "status.json").read_text())
    assert status["status"] == "failed" and "label_smoothing" in status["error"]
    assert "\n" not in status["error"]


@needs_mnist
def test_kill_after_last_checkpoint_still_writes_final_metrics(tmp_path):
    args = ["data=mnist", "trainer.accelerator=cpu", "trainer.max_epochs=2",
            "trainer.limit_train_batches=4", "trainer.enable_progress_bar=false",
            "model=mlp", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]",
            "callbacks.metrics.n=200", "callbacks.metrics.n_final=300", "n_fixed=16",
            "metric=val/fid"]
    run_dir = tmp_path / "run"
    run_module("gan.train", *args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    # what a kill between the last checkpoint and the final metrics leaves behind
    (run_dir / "metrics.json").unlink()
    (run_dir / "samples" / "final.png").unlink()
    (run_dir / "status.json").unlink()
    proc = run_module("gan.train", *args, f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
                      f"hydra.run.dir={run_dir}", cwd=tmp_path)
    report = json.loads((run_dir / "metrics.json").read_text())
    assert report["n"] == 300 and report["g_step"] == 8 and report["metrics"]["val/fid"] > 0
    assert (run_dir / "samples" / "final.png").stat().st_size > 0
    assert json.loads((run_dir / "status.json").read_text())["status"] == "done"
    assert "final artefacts" in proc.stdout + proc.stderr


# ---- checkpoints that cannot be used: one clear line each -------------------------------------

@pytest.fixture(scope="module")
def good_ckpt(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("src")
    run_module("gan.train", *TINY, "trainer.limit_train_batches=2", f"hydra.run.dir={run_dir}",
               cwd=run_dir)
    return run_dir / "checkpoints" / "last.ckpt"


def _bad_files(good: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    data = good.read_bytes()
    truncated, noise, foreign = tmp / "truncated.ckpt", tmp / "noise.ckpt", tmp / "foreign.pt"
    truncated.write_bytes(data[: len(data) // 2])
    noise.write_bytes(os.urandom(4096))
    torch.save({"weight": torch.zeros(3)}, foreign)
    return {"truncated": (truncated, "not a readable gan.train checkpoint"),
            "random bytes": (noise, "not a readable gan.train checkpoint"),
            "foreign": (foreign, "not a checkpoint written by gan.train")}


@pytest.mark.parametrize("entry", ["gan.train", "gan.generate"])
def test_bad_checkpoint_is_one_clear_line(good_ckpt, tmp_path, entry):
    for name, (path, message) in _bad_files(good_ckpt, tmp_path).items():
        args = [*TINY, f"ckpt_path={path}"] if entry == "gan.train" else [f"ckpt_path={path}"]
        proc = run_module(entry, *args, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path,
                          check=False)
        err = proc.stderr + proc.stdout
        assert proc.returncode != 0, name
        assert message in err, (name, err)
        assert "weights_only=False" not in err, (name, err)
        assert f"ckpt_path={path}" in err


def test_model_mismatch_names_the_config_keys(good_ckpt, tmp_path):
    proc = run_module("gan.train", *TINY, "model.generator.hidden=[48]", f"ckpt_path={good_ckpt}",
                      f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False)
    err = proc.stderr + proc.stdout
    assert proc.returncode != 0
    assert "was trained with another model: model.generator.hidden=[32] (checkpoint) vs [48] " \
           "(this run)" in err
    assert "size mismatch" not in err and "weights_only=False" not in err
    proc = run_module("gan.train", *TINY[:-3], "model=dcgan", f"ckpt_path={good_ckpt}",
                      f"hydra.run.dir={tmp_path / 'run2'}", cwd=tmp_path, check=False)
    err = proc.stderr + proc.stdout
    assert "model._target_" in err or "model.generator._target_=gan.networks.mlp" in err, err
