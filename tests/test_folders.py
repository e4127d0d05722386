"""Nothing lost, round three (issue #32): a folder that holds a run is never written by another
run or sweep; locks taken before anything is written, their holders named; every printed
command runs as printed; signals stop a run in any phase; settings checked against the data;
a search that cannot be poisoned; one line for a corrupt journal and a read-only sweep dir."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from gan.io.usage import UsageError
from gan.runs import lock
from gan.runs.folder import holds_run, resume_line
from gan.sweeps.continuation import OVERRIDES, SweepFolder
from tests.conftest import FAST, child_env, run_module

TINY = [*FAST, "model=mlp", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]",
        "callbacks.samples.every_n_epochs=null", "metric=null"]
ENV = child_env()


def shell(line: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """A printed command, run exactly as printed (through the shell, as a user pastes it)."""
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("gan.train:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


# ---- printed commands ---------------------------------------------------------------------

@pytest.mark.parametrize("folder", ["/tmp/s/0_loss=bce,seed=0", "/tmp/a b/it's", "/tmp/x[1]"])
def test_a_printed_resume_command_parses_back_to_its_folder(folder):
    """Hydra reads `=`, `,`, brackets and quotes in a value as syntax: the printed line quotes
    them, so shell then Hydra give back the folder and checkpoint exactly."""
    line = resume_line(["loss=bce", "model.generator.hidden=[32]", "ckpt_path=/old"], folder,
                       f"{folder}/checkpoints/last.ckpt")
    args = shlex.split(line)
    assert args[:3] == ["python", "-m", "gan.train"]
    parsed = {o.get_key_element(): o.value()
              for o in OverridesParser.create().parse_overrides(args[3:])}
    assert parsed["hydra.run.dir"] == folder
    assert parsed["ckpt_path"] == f"{folder}/checkpoints/last.ckpt"
    assert parsed["model.generator.hidden"] == [32] and parsed["loss"] == "bce"


# ---- run folders --------------------------------------------------------------------------

def run_config(run_dir: Path, *task: str, **keys):
    return OmegaConf.create({"ckpt_path": None, "skip_done": False, "overwrite": False, **keys,
                             "hydra": {"run": {"dir": str(run_dir)},
                                       "overrides": {"task": list(task)}}})


def finished_run(run_dir: Path) -> Path:
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    (run_dir / "status.json").write_text(json.dumps({"status": "done"}))
    return run_dir


def test_a_fresh_run_into_a_finished_run_is_refused_and_overwrite_moves_it_aside(tmp_path,
                                                                                  capfd):
    run = finished_run(tmp_path / "0_loss=bce")
    with pytest.raises(SystemExit) as exit_info:
        lock.RunFolder().on_run_start(run_config(run, "loss=bce"))
    assert exit_info.value.code == 2
    line = capfd.readouterr().err.strip()
    assert "already holds a run (status done)" in line and "overwrite=true" in line
    resume = line.split("resume it with: ", 1)[1]
    assert resume.startswith(f"python -m gan.train loss=bce 'ckpt_path=\"{run}/checkpoints")
    parsed = {o.get_key_element(): o.value()
              for o in OverridesParser.create().parse_overrides(shlex.split(resume)[3:])}
    assert parsed["hydra.run.dir"] == str(run)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"weights"
    assert not (run / lock.LOCK).exists()  # the refusal drops the lock it took
    lock.RunFolder().on_run_start(run_config(run, "loss=bce", overwrite=True))
    lock.release(run)
    aside = tmp_path / "0_loss=bce.old-1"
    assert (aside / "checkpoints" / "last.ckpt").read_bytes() == b"weights"
    assert holds_run(run) is None and holds_run(aside) == "done"
    assert f"is now in {aside}" in capfd.readouterr().err


def test_a_resume_or_skip_done_into_a_finished_run_is_let_through(tmp_path):
    run = finished_run(tmp_path / "r")
    for keys in ({"ckpt_path": str(run / "checkpoints" / "last.ckpt")}, {"skip_done": True}):
        lock.RunFolder().on_run_start(run_config(run, **keys))
        lock.release(run)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"weights"


def test_a_run_refused_before_its_first_checkpoint_holds_nothing(tmp_path):
    (tmp_path / "status.json").write_text(json.dumps({"status": "failed"}))
    assert holds_run(tmp_path) is None
    (tmp_path / "status.json").write_text(json.dumps({"status": "interrupted"}))
    assert holds_run(tmp_path) is None  # stopped in setup: nothing of value
    (tmp_path / "curve.csv").write_text("wall_s\n1\n")
    assert holds_run(tmp_path) == "interrupted"


# ---- sweep folders ------------------------------------------------------------------------

def sweep_config(sweep_dir: Path, *task: str, **keys):
    return OmegaConf.create({"overwrite": False, **keys, "hydra": {
        "sweep": {"dir": str(sweep_dir)}, "overrides": {"task": list(task)},
        "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"}}})


def test_a_second_sweep_continues_the_same_sweep_or_is_refused(tmp_path, capfd):
    sweep = tmp_path / "X"
    SweepFolder().on_multirun_start(sweep_config(sweep, "seed=0,1"))
    assert (sweep / lock.SWEEP_LOCK).exists()  # held to the sweep's end
    SweepFolder().on_multirun_end(sweep_config(sweep, "seed=0,1"))
    assert (sweep / OVERRIDES).read_text() == "seed=0,1\n"
    job = finished_run(sweep / "0_seed=0")
    (job / ".hydra").mkdir()
    (job / ".hydra" / "config.yaml").write_text("seed: 0\n")
    SweepFolder().on_multirun_start(sweep_config(sweep, "seed=0,1", "skip_done=true"))  # same
    SweepFolder().on_multirun_end(sweep_config(sweep, "seed=0,1"))
    assert (job / ".hydra" / "config.1.yaml").read_text() == "seed: 0\n"  # its history
    with pytest.raises(SystemExit) as exit_info:
        SweepFolder().on_multirun_start(sweep_config(sweep, "seed=0,1", "loss=hinge"))
    assert exit_info.value.code == 2
    line = capfd.readouterr().err.strip()
    assert "holds another sweep" in line and "loss=hinge" in line and "\n" not in line
    assert not (sweep / lock.SWEEP_LOCK).exists()
    assert (job / "checkpoints" / "last.ckpt").read_bytes() == b"weights"
    SweepFolder().on_multirun_start(sweep_config(sweep, "seed=0,1", "loss=hinge",
                                                 overwrite=True))
    SweepFolder().on_multirun_end(sweep_config(sweep))
    aside = tmp_path / "X.old-1"
    assert (aside / "0_seed=0" / "checkpoints" / "last.ckpt").read_bytes() == b"weights"
    assert (sweep / OVERRIDES).read_text() == "seed=0,1\nloss=hinge\n"


def test_a_sweep_from_before_the_record_is_judged_by_its_multirun_yaml(tmp_path, capfd):
    sweep = tmp_path / "old"
    sweep.mkdir()
    OmegaConf.save(OmegaConf.create({"hydra": {"overrides": {"task": ["seed=0,1"]}}}),
                   sweep / "multirun.yaml")
    with pytest.raises(SystemExit):
        SweepFolder().on_multirun_start(sweep_config(sweep, "seed=0,1", "loss=hinge"))
    assert "loss=hinge" in capfd.readouterr().err


def test_job_folder_names_are_unique_to_the_whole_override_set(tmp_path):
    from gan.io.resolvers import short_dirname
    from gan.sweeps.index import SWEPT_KEYS

    (tmp_path / SWEPT_KEYS).write_text("seed\n")

    def name(*task):
        root = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)},
                                           "overrides": {"task": list(task)}}})
        return short_dirname("ignored", root)

    assert name("seed=0") != name("seed=0", "loss=hinge")
    assert name("seed=0", "loss=hinge") == "seed=0,loss=hinge"
    assert name("seed=0", "skip_done=true", "+study=tutorial") == "seed=0"  # how, not what


def test_two_sweeps_into_one_dir_at_once_the_second_is_refused(tmp_path, capfd):
    """The first sweep holds the sweep dir's lock from before Hydra writes anything there."""
    sweep = tmp_path / "X"
    gan_like = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                                 "gan.train", "-m"])
    try:
        started(gan_like, "gan.train")
        sweep.mkdir()
        (sweep / lock.SWEEP_LOCK).write_text(json.dumps({
            "pid": gan_like.pid, "host": os.uname().nodename, "started": "2026-12-07T01:00:00"}))
        with pytest.raises(SystemExit):
            SweepFolder().on_multirun_start(sweep_config(sweep, "loss=hinge"))
        line = capfd.readouterr().err
        assert f"pid {gan_like.pid}" in line and "in use by another run" in line
        assert sorted(p.name for p in sweep.iterdir()) == [lock.SWEEP_LOCK]  # nothing written
        # a single run into one of its job folders is refused as well
        with pytest.raises(SystemExit):
            lock.RunFolder().on_run_start(run_config(sweep / "0_seed=0"))
        assert "is one of its job folders" in capfd.readouterr().err
        assert not (sweep / "0_seed=0" / ".hydra").exists()
    finally:
        gan_like.kill()
        gan_like.wait()


# ---- locks: who holds them ----------------------------------------------------------------

def started(proc: subprocess.Popen, word: str) -> None:
    """Wait until the child's command line is its own (it has exec'd)."""
    end = time.time() + 30
    while word not in Path(f"/proc/{proc.pid}/cmdline").read_text(errors="replace"):
        assert time.time() < end
        time.sleep(0.05)


def write_lock(folder: Path, pid: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / lock.LOCK
    path.write_text(json.dumps({"pid": pid, "host": os.uname().nodename,
                                "started": "2026-12-02T10:00:00"}))
    return path


def test_a_lock_of_a_live_process_that_is_not_gan_names_its_command(tmp_path):
    other = subprocess.Popen(["sleep", "120"])
    try:
        started(other, "sleep")
        path = write_lock(tmp_path, other.pid)
        with pytest.raises(lock.RunFolderBusy) as err:
            lock.acquire(tmp_path)
        message = str(err.value)
        assert "`sleep 120`" in message and "not a gan run" in message
        assert f"remove {path}" in message
        assert re.search(r"started 20\d\d-\d\d-\d\dT", message)  # the process's start time
    finally:
        other.kill()
        other.wait()


def test_a_hung_runs_lock_names_its_command_and_how_to_clear_it(tmp_path):
    hung = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "gan.train"])
    try:
        started(hung, "gan.train")
        path = write_lock(tmp_path, hung.pid)
        os.utime(path, (time.time() - 2 * lock.STALE_AFTER_S,) * 2)  # no heartbeat since
        with pytest.raises(lock.RunFolderBusy) as err:
            lock.acquire(tmp_path)
        message = str(err.value)
        assert "looks hung" in message and "gan.train" in message
        assert f"kill {hung.pid}" in message and f"remove {path}" in message
    finally:
        hung.kill()
        hung.wait()


# ---- signals ------------------------------------------------------------------------------

def test_a_signal_stops_at_once_outside_a_batch_and_waits_inside_one(tmp_path):
    from gan.runs.resume import Interrupted, SetupInterrupted, _active, on_signal

    last = tmp_path / "last.ckpt"
    run = SimpleNamespace(trained=False, in_batch=False, signal=None, last_path=last)
    _active.append(run)
    try:
        with pytest.raises(SetupInterrupted):  # data loading, clustering, compilation
            on_signal(signal.SIGTERM, None)
        run.signal, run.trained, run.in_batch = None, True, True
        assert on_signal(signal.SIGTERM, None) is None  # Lightning stops after the batch
        run.in_batch = False
        assert on_signal(signal.SIGTERM, None) is None  # no checkpoint yet: the next boundary
        last.write_bytes(b"x")
        with pytest.raises(Interrupted) as stop:  # evaluation, checkpoint writing: at once
            on_signal(signal.SIGINT, None)
        assert stop.value.ckpt_path == last and stop.value.code == 143  # the first signal's
    finally:
        _active.remove(run)
    with pytest.raises(SetupInterrupted) as before:  # no run yet (composing, building data)
        on_signal(signal.SIGINT, None)
    assert before.value.code == 130


# ---- checks against the data, and bad values ----------------------------------------------

def test_self_cond_is_checked_against_the_data():
    from gan.tricks.self_conditioned import SelfConditioned

    small = SelfConditioned()
    small.fit_data(5)  # a 5-image folder: every image a cluster of its own, none empty
    assert (small.clusters, small.label_count, small.n_images) == (5, 5, 5)
    with pytest.raises(ValueError, match=r"n_images=100000, but the training data holds 60000"):
        SelfConditioned(clusters=100000, n_images=100000).fit_data(60000)
    with pytest.raises(ValueError, match=r"clusters=100, but only 60 images"):
        SelfConditioned(clusters=100, n_images=10000).fit_data(60)
    big = SelfConditioned()
    big.fit_data(60000)
    assert (big.clusters, big.n_images) == (50, 10000)


def test_resume_allow_must_name_keys_in_a_list(tmp_path):
    from gan.io.config import compose_train
    from gan.runs.checks import check_config

    check_config(compose_train(["resume.allow=[optim.lr_g,trainer.max_epochs]"], tmp_path))
    with pytest.raises(UsageError, match="names optim.lr_x, not a key of this config"):
        check_config(compose_train(["resume.allow=[optim.lr_x]"], tmp_path))
    with pytest.raises(UsageError, match="must be a list of config keys"):
        check_config(compose_train(["resume.allow=optim.lr_g"], tmp_path))


def test_psi_that_is_not_a_number_gets_the_range_message():
    from gan.sampling.posthoc import Truncation

    for psi in ("abc", 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"sampler.psi=.* must be in \[0, 1\]"):
            Truncation(psi=psi)


def stroke(draw: ImageDraw.ImageDraw, fill) -> None:
    draw.line((20, 10, 40, 50), fill=fill, width=5)


def test_16_bit_and_transparent_pngs_are_read_as_their_ink(tmp_path):
    from gan.sampling.preprocess import digits, open_image

    white_on_clear = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    stroke(ImageDraw.Draw(white_on_clear), (255, 255, 255, 255))
    white_on_clear.save(tmp_path / "clear.png")
    deep = np.full((64, 64), 60000, np.uint16)
    deep[10:50, 28:34] = 2000  # dark ink on light paper, 16 bits a pixel
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    for name in ("clear.png", "deep.png"):
        x = digits(open_image(tmp_path / name))
        assert x.shape == (28, 28) and 0.03 < (x > 0.5).mean() < 0.2, name  # a stroke


# ---- the search ---------------------------------------------------------------------------

@pytest.mark.parametrize("knob,message", [
    ("optim.lr_g=abc", "optim.lr_g=abc is not a number"),
    ("optim.lr_g=10", "optim.lr_g=10 is outside the search space interval [1e-05, 0.002], log"),
    ("data.batch_size=100", "data.batch_size=100 is not one of choice(32, 64, 128)"),
])
def test_gan_search_refuses_a_value_outside_the_space(knob, message):
    from gan.sweeps.search import queued_trial, search_config

    cfg, knobs = search_config(["hparams_search=optuna", knob])
    with pytest.raises(ValueError) as err:
        queued_trial(cfg, knobs)
    assert message in str(err.value)


def test_a_poisoned_queued_trial_is_failed_with_its_reason_not_run(tmp_path):
    """A trial queued around gan.search's check (Optuna's enqueue_trial) with a value the
    space cannot hold: the worker fails it with the reason on first contact and goes on."""
    from gan.sweeps.optuna_sweep import Search
    from gan.sweeps.storage import storage_url

    ran = []

    class Launcher:
        def launch(self, jobs, initial_job_idx):
            ran.extend(jobs)
            return [type("Return", (), {"return_value": 1.0})() for _ in jobs]

    url = storage_url(None, tmp_path)
    sampler = OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": 0})
    search = Search(storage=url, study_name="s", direction="minimize", n_trials=2, n_jobs=1,
                    sampler=sampler, pruner=None,
                    params={"optim.lr_g": "tag(log, interval(1e-5, 2e-3))"})
    search.create_study().enqueue_trial({"optim.lr_g": "abc"})
    study = search.run(Launcher(), [], OmegaConf.create({"hydra": {"sweep": {
        "dir": str(tmp_path)}}}))
    first = study.trials[0]
    assert first.state == optuna.trial.TrialState.FAIL
    assert "optim.lr_g=abc is not a number" in first.user_attrs["outcome"]
    assert len(ran) == 2 and not any("abc" in " ".join(job) for job in ran)


def test_a_corrupt_journal_is_one_line_naming_it(tmp_path):
    from gan.sweeps.storage import load_study

    journal = tmp_path / "optuna.journal"
    journal.write_text('{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}'
                       '\n{{{ not json\n{"op_code": 5}\n')
    with pytest.raises(UsageError) as err:
        load_study(str(journal), "s")
    assert str(journal) in str(err.value) and "\n" not in str(err.value)


# ---- real processes -----------------------------------------------------------------------

@pytest.mark.slow
def test_a_finished_run_is_never_overwritten_and_its_printed_resume_runs(tmp_path):
    run = tmp_path / "runs" / "0_loss=bce,seed=0"  # a sweep job's name: `=` and `,`
    args = [*TINY, f"hydra.run.dir='{run}'"]
    run_module("gan.train", *args, cwd=tmp_path)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and ".hydra" not in
              p.parts and p.suffix != ".log"}
    proc = run_module("gan.train", *args, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert {p: p.read_bytes() for p in before} == before  # nothing written
    resume = line.split("resume it with: ", 1)[1]
    again = shell(resume, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((run / "status.json").read_text())["status"] == "done"
    moved = run_module("gan.train", *args, "overwrite=true", cwd=tmp_path, check=False)
    assert moved.returncode == 0, moved.stderr[-2000:]
    aside = run.with_name(run.name + ".old-1")
    assert (aside / "checkpoints" / "last.ckpt").is_file() and (run / "status.json").is_file()


@pytest.mark.slow
def test_a_second_sweep_with_another_override_leaves_the_first_alone(tmp_path):
    sweep = tmp_path / "X"
    first = ["-m", *TINY, "seed=0", f"hydra.sweep.dir={sweep}"]
    run_module("gan.train", *first, cwd=tmp_path)
    [job] = [p for p in sweep.iterdir() if p.is_dir()]
    ckpt = (job / "checkpoints" / "last.ckpt").read_bytes()
    proc = run_module("gan.train", *first, "loss=hinge", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "loss=hinge" in one_error_line(proc.stderr)
    again = run_module("gan.train", *first, cwd=tmp_path, check=False)  # the same: continues
    assert again.returncode == 0 and "already finished" in again.stdout + again.stderr
    assert (job / "checkpoints" / "last.ckpt").read_bytes() == ckpt
    assert [p for p in sweep.iterdir() if p.is_dir()] == [job]


def wait_for(predicate, proc, timeout=240.0) -> None:
    end = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < end, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_sigterm_to_a_sweep_job_prints_a_resume_command_that_runs(tmp_path):
    sweep = tmp_path / "S"
    args = ["-m", *TINY, "data.n=40000", "save_every_n_batches=5", "seed=0",
            f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen([sys.executable, "-m", "gan.train", *args], cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(sweep.glob("*/checkpoints/last.ckpt")), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    [line] = [ln for ln in err.splitlines() if "Resume with: " in ln]
    again = shell(line.split("Resume with: ", 1)[1], tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    [job] = [p for p in sweep.iterdir() if p.is_dir()]
    assert "=" in job.name and json.loads((job / "status.json").read_text())["status"] == "done"


@pytest.mark.slow
def test_sigterm_while_clustering_stops_within_seconds_with_nothing_half_written(tmp_path):
    """The default recipe clusters before its first batch (k-means++ here on 6,000 images into
    4,000 clusters: minutes): SIGTERM stops it in seconds, and the line it prints runs."""
    run = tmp_path / "k"
    args = ["data=fake", "data.n=6000", "data.batch_size=16", "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false", "tricks.self_cond.clusters=4000",
            "tricks.self_cond.n_images=6000", "callbacks.samples.every_n_epochs=null",
            "metric=null", f"hydra.run.dir={run}"]
    proc = subprocess.Popen([sys.executable, "-m", "gan.train", *args], cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(run.glob("events.out.tfevents*")), proc)  # fit has begun: clustering
    time.sleep(2)
    start = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert time.time() - start < 20 and proc.returncode == 143, err[-2000:]
    assert "stopped before the first batch; nothing was trained" in err
    assert not (run / "checkpoints").exists() and holds_run(run) is None
    assert not list(run.rglob("*.tmp"))
    line = err.split("Start it again with: ", 1)[1].splitlines()[0]
    assert shlex.split(line)[3:] == args  # the same run, into the same folder
