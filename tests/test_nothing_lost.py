"""Issue 21, "Nothing lost, round two": one owner per run folder, a resume that never lies about
its config, outputs checked before the work, one bad-input contract for every entry point, a
report that distrusts its inputs, user photos in MNIST's form. One test per finding."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from gan.io.checkpoint import CheckpointError
from gan.runs import lock
from gan.runs.resume_config import compare, source_key
from gan.runs.wiring import fit
from gan.sampling.preprocess import Steps, digits
from tests.conftest import FAST, UNCONDITIONAL, child_env, compose_train, run_module

TINY = [*FAST, "model=mlp", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]",
        "callbacks.samples.every_n_epochs=null", "metric=null"]
ENTRY_POINTS = ["train", "generate", "evaluate", "report", "project", "export", "bench",
                "classifier"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("src")
    fit(compose_train([*TINY, "trainer.limit_train_batches=2"], run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    """Every kind of wrong file an entry point is given."""
    (tmp_path / "text.ckpt").write_text("hello, not a checkpoint\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    Image.new("L", (40, 40), 255).save(tmp_path / "img.png")
    return {k: tmp_path / v for k, v in dict(text="text.ckpt", empty="empty.pt", dir="folder",
                                             file="a_file", img="img.png").items()}


def one_line(code: int, out: str, err: str, prog: str, *needles: str) -> str:
    """A refusal as the house wants it: exit 2, one `gan.<prog>:` line naming the key or file,
    no traceback."""
    text = out + err
    assert code == 2, text
    assert "Traceback" not in text and "Error executing job" not in text, text
    lines = [line for line in err.splitlines() if line.startswith(f"gan.{prog}:")]
    assert len(lines) == 1, text
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")

BAD = [  # (entry point, arguments, what the one line must name); {x}: a file of `files`
    ("generate", ["ckpt_path={text}", "n=-5"], ["n=-5"]),
    ("generate", ["ckpt_path={text}", "n=abc"], ["n=abc"]),
    ("generate", ["ckpt_path={text}", "batch_size=0"], ["batch_size=0"]),
    ("generate", ["ckpt_path={text}", "label=3.5"], ["label=3.5"]),
    pytest.param("generate", ["ckpt_path={text}", "device=cuda"], ["device=cuda"], marks=NO_CUDA),
    ("generate", ["ckpt_path={text}"], ["ckpt_path=", "not a torch file"]),
    ("generate", ["ckpt_path={dir}"], ["ckpt_path=", "is a directory"]),
    ("generate", ["ckpt_path={text}", "out={file}/x.png"], ["out=", "cannot write"]),
    ("generate", ["ckpt_path={text}", "out=x.gif"], ["out=x.gif"]),
    ("generate", ["no_such_key=1"], ["no_such_key"]),
    ("evaluate", ["samples={text}", "n=-5"], ["n=-5"]),
    ("evaluate", ["samples={empty}"], ["samples=", "empty"]),
    ("evaluate", ["samples={text}"], ["samples=", "not a torch file"]),
    ("evaluate", ["ckpt_path={dir}"], ["ckpt_path=", "is a directory"]),
    ("evaluate", ["samples={text}", "ckpt_path={text}"], ["exactly one of"]),
    ("project", ["ckpt_path={text}", "input={img}"], ["not a torch file"]),
    ("project", ["ckpt_path={text}", "input={img}", "label=3.5"], ["label=3.5"]),
    ("project", ["ckpt_path={text}", "input={text}"], ["input=", "not an image"]),
    pytest.param("project", ["ckpt_path={text}", "input={img}", "device=cuda"], ["device=cuda"],
                 marks=NO_CUDA),
    ("export", ["ckpt_path={text}", "format=torchscript"], ["not a torch file"]),
    ("export", ["ckpt_path={text}", "format=tflite"], ["format='tflite'"]),
    pytest.param("bench", ["devices=[cuda]"], ["devices=cuda"], marks=NO_CUDA),
    ("bench", ["steps=0"], ["steps=0"]),
    ("bench", ["json={file}/b.json"], ["json=", "cannot write"]),
    ("report", ["{dir}", "report.bogus=1"], ["report.bogus"]),
    ("report", [], ["give the sweep folders"]),
    ("classifier", ["epochs=0"], ["epochs=0"]),
    ("train", [*TINY, "ckpt_path={text}"], ["ckpt_path=", "not a torch file"]),
    ("train", [*TINY, "ckpt_path={dir}"], ["ckpt_path=", "is a directory"]),
]


@pytest.mark.parametrize("prog,args,needles", BAD)
def test_bad_input_is_one_line_in_every_entry_point(files, tmp_path, run_main, prog, args,
                                                    needles):
    args = [a.format(**files) for a in args]
    if prog not in ("bench", "report"):
        args.append(f"hydra.run.dir={tmp_path / 'run'}")
    one_line(*run_main(f"gan.{prog}", *args, cwd=tmp_path), prog, *needles)
    assert not (tmp_path / "run" / "metrics.json").exists()  # n=-5 scored nothing


@pytest.mark.parametrize("prog", ENTRY_POINTS)
def test_help_in_every_entry_point(tmp_path, run_main, prog):
    code, out, err = run_main(f"gan.{prog}", "--help", cwd=tmp_path)
    assert code == 0 and "Traceback" not in out + err, out + err
    assert f"Keys (conf/{prog}.yaml)" in out and "python -m gan." in out
    assert list(tmp_path.iterdir()) == []  # help writes nothing


def test_refusal_is_the_process_s_one_line(files, tmp_path):
    """The same contract from a real process: exit 2, one line, no traceback, nothing written."""
    proc = run_module("gan.generate", f"ckpt_path={files['text']}", "n=abc",
                      f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False)
    one_line(proc.returncode, proc.stdout, proc.stderr, "generate", "n=abc")
    assert not (tmp_path / "run").exists()


# ---- outputs checked before the work -------------------------------------------------------

def test_export_never_replaces_a_file_by_another_kind(files, tmp_path, run_main):
    onnx = tmp_path / "g.onnx"
    onnx.write_bytes(b"\x08\x07\x12\x07pytorch fake onnx body")  # how an ONNX file starts
    before = onnx.read_bytes()
    code, out, err = run_main("gan.export", f"ckpt_path={files['text']}", "format=torchscript",
                              f"out={onnx}", cwd=tmp_path)
    one_line(code, out, err, "export", "out=", "format=torchscript")
    assert onnx.read_bytes() == before and not Path(f"{onnx}.json").exists()
    picture = tmp_path / "g.pt"  # a .pt name that holds a PNG: not TorchScript's to replace
    Image.new("L", (4, 4)).save(picture, format="PNG")
    code, out, err = run_main("gan.export", f"ckpt_path={files['text']}", "format=torchscript",
                              f"out={picture}", cwd=tmp_path)
    one_line(code, out, err, "export", "holds a PNG file")


def test_export_replaces_its_own_kind_atomically(ckpt, tmp_path, run_main):
    out = tmp_path / "g.pt"
    torch.save({"old": 1}, out)  # a torch zip: the same kind as TorchScript
    code, stdout, err = run_main("gan.export", f"ckpt_path={ckpt}", "format=torchscript",
                                 f"out={out}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert code == 0, stdout + err
    labels = torch.zeros(2, dtype=torch.long)  # the default recipe's G takes cluster ids
    assert torch.jit.load(str(out))(torch.zeros(2, 100), labels).shape == (2, 1, 28, 28)
    assert json.loads(Path(f"{out}.json").read_text())["check"]["max_abs_diff"] < 1e-4
    assert not list(tmp_path.glob(".*staged*"))


def test_bench_checks_its_json_before_measuring(files, tmp_path, run_main):
    code, out, err = run_main("gan.bench", f"json={files['file']}/b.json", "steps=1",
                              cwd=tmp_path)
    one_line(code, out, err, "bench", "json=")
    assert "CPU threads" not in out  # refused before the first measurement


def test_evaluate_refuses_another_dataset_s_checkpoint(ckpt, tmp_path, run_main):
    saved = torch.load(ckpt, weights_only=True)
    saved["hyper_parameters"]["config"]["data"]["name"] = "fashion_mnist"
    other = tmp_path / "fashion.ckpt"
    torch.save(saved, other)
    code, out, err = run_main("gan.evaluate", f"ckpt_path={other}", "data=mnist", "n=100",
                              f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    one_line(code, out, err, "evaluate", "fashion_mnist", "allow_other_data=true")


# ---- resume: honest about its config -------------------------------------------------------

class LearningRates(L.Callback):
    seen: list = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        LearningRates.seen.append([o.param_groups[0]["lr"] for o in trainer.optimizers])


def test_resume_refuses_a_changed_training_key(ckpt, tmp_path):
    cfg = compose_train([*TINY, "optim.lr_g=1e-2", "data.batch_size=8", f"ckpt_path={ckpt}"],
                        tmp_path)
    with pytest.raises(CheckpointError) as err:
        fit(cfg)
    text = str(err.value)
    assert "optim.lr_g=0.0004 (checkpoint) vs 0.01 (this run)" in text and "\n" not in text
    assert "data.batch_size=16 (checkpoint) vs 8 (this run)" in text
    assert "resume.allow=" in text
    assert "recipe=unconditional" not in text  # the hint only where it is the cause


def test_a_run_of_the_old_default_resumes_with_the_recipe_named():
    """A checkpoint trained before the self-conditioned default, resumed by the bare command:
    the refusal names the recipe that brings its config back."""
    from omegaconf import OmegaConf

    from gan.runs.resume_config import check_resume

    old = compose_train([*TINY, *UNCONDITIONAL], "/nonexistent")
    cfg = compose_train([*TINY, "ckpt_path=old.ckpt"], "/nonexistent")  # the bare command
    with pytest.raises(CheckpointError, match="resume it with recipe=unconditional"):
        check_resume(OmegaConf.to_container(old, resolve=True), cfg)
    same = compose_train([*TINY, *UNCONDITIONAL, "ckpt_path=old.ckpt"], "/nonexistent")
    assert check_resume(OmegaConf.to_container(old, resolve=True), same) == set()


def test_resume_applies_allowed_keys_to_the_optimizer(ckpt, tmp_path, caplog):
    cfg = compose_train([*TINY, "optim.lr_g=1e-2", "resume.allow=[optim.lr_g]",
                         "trainer.max_epochs=2", "trainer.limit_train_batches=2",
                         f"+callbacks.lr._target_={__name__}.LearningRates",
                         f"ckpt_path={ckpt}"], tmp_path)
    LearningRates.seen.clear()
    with caplog.at_level("INFO", logger="gan.runs.resume_config"):
        fit(cfg)
    # Lightning restored the checkpoint's Adam state (lr_g 4e-4); the allowed lr replaced it,
    # and only for G: D keeps the checkpoint's 4e-4.
    assert LearningRates.seen[0] == [pytest.approx(1e-2), pytest.approx(4e-4)]
    assert "optim.lr_g=0.0004 (checkpoint) vs 0.01 (this run)" in caplog.text
    assert "trainer.max_epochs=1 (checkpoint) vs 2 (this run)" in caplog.text
    stored = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert stored["hyper_parameters"]["config"]["optim"]["lr_g"] == 1e-2  # the folder says so


def test_an_interpolated_key_is_covered_by_its_source():
    raw = {"optim": {"lr_g": 1, "generator": {"lr": "${..lr_g}"}, "x": {"y": "${optim.lr_g}"}}}
    assert source_key("optim.generator.lr", raw) == "optim.lr_g"
    assert source_key("optim.x.y", raw) == "optim.lr_g"
    assert source_key("optim.lr_g", raw) == "optim.lr_g"
    cfg = compose_train([*TINY, "optim.lr_d=1e-3", "trainer.max_epochs=3"], "/nonexistent")
    saved = compose_train(TINY, "/nonexistent")
    from omegaconf import OmegaConf
    refused, applied, roles = compare(OmegaConf.to_container(saved, resolve=True), cfg)
    assert [r.split("=")[0] for r in refused] == ["optim.discriminator.lr", "optim.lr_d"]
    assert [a.split("=")[0] for a in applied] == ["budget.value", "trainer.max_epochs"]
    assert roles == set()


def test_refused_resume_leaves_the_folder_as_it_was(ckpt, tmp_path, run_main):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("optim:\n  lr_g: 0.0004\n")
    (run / "status.json").write_text(json.dumps({"status": "done", "g_step": 8}))
    code, out, err = run_main("gan.train", *TINY, f"ckpt_path={ckpt}", "optim.lr_g=1e-2",
                              f"hydra.run.dir={run}", cwd=tmp_path)
    one_line(code, out, err, "train", "optim.lr_g=0.0004 (checkpoint) vs 0.01")
    assert (run / ".hydra" / "config.yaml").read_text() == "optim:\n  lr_g: 0.0004\n"
    assert not list((run / ".hydra").glob("config.*.yaml"))
    assert json.loads((run / "status.json").read_text())["status"] == "done"
    assert not (run / lock.LOCK).exists()


def test_config_history_keeps_every_config(tmp_path):
    hydra_dir = tmp_path / ".hydra"
    hydra_dir.mkdir()
    for n, lr in enumerate(("1e-3", "2e-3"), 1):
        (hydra_dir / "config.yaml").write_text(f"lr: {lr}\n")
        assert lock.archive_configs(tmp_path) == n
    assert (hydra_dir / "config.1.yaml").read_text() == "lr: 1e-3\n"
    assert (hydra_dir / "config.2.yaml").read_text() == "lr: 2e-3\n"
    (hydra_dir / "config.yaml").write_text("lr: refused\n")
    assert lock.restore_configs(tmp_path)  # the last run was refused: its config goes
    assert (hydra_dir / "config.yaml").read_text() == "lr: 2e-3\n"
    assert lock.history_numbers(hydra_dir) == [1]


# ---- one owner per run folder --------------------------------------------------------------

@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def write_lock(run: Path, pid: int, host: str | None = None) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    path = run / lock.LOCK
    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                "started": "2026-12-02T10:00:00"}))
    return path


def test_a_held_folder_is_refused_naming_its_holder(tmp_path, live_pid):
    write_lock(tmp_path, live_pid)
    with pytest.raises(lock.RunFolderBusy) as err:
        lock.acquire(tmp_path)
    assert f"pid {live_pid} on {socket.gethostname()}" in str(err.value)
    assert "2026-12-02T10:00:00" in str(err.value)
    path = write_lock(tmp_path, live_pid, host="elsewhere")  # another host, heartbeat fresh
    with pytest.raises(lock.RunFolderBusy):
        lock.acquire(tmp_path)
    os.utime(path, (time.time() - 2 * lock.STALE_AFTER_S,) * 2)  # its heartbeat stopped
    lock.acquire(tmp_path)
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release(tmp_path)
    assert not path.exists()


def test_a_killed_run_s_lock_is_taken_over_with_a_line(tmp_path, capfd):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_lock(tmp_path, dead.pid)
    lock.acquire(tmp_path)
    assert f"taking over {tmp_path.resolve() / lock.LOCK}" in capfd.readouterr().err
    lock.release(tmp_path)


def test_second_train_into_a_held_folder_is_refused(tmp_path, live_pid):
    """A real process: refused before Hydra writes its logs or .hydra/ into the folder."""
    run = tmp_path / "run"
    write_lock(run, live_pid)
    proc = run_module("gan.train", *TINY, f"hydra.run.dir={run}", cwd=tmp_path, check=False)
    one_line(proc.returncode, proc.stdout, proc.stderr, "train", f"pid {live_pid}",
             "in use by another run")
    assert sorted(p.name for p in run.iterdir()) == [lock.LOCK]  # nothing else touched


@pytest.mark.slow
def test_two_trains_into_one_folder(tmp_path):
    """A second real run started into a folder a first one trains in: refused in one line
    naming the first, which trains on undisturbed (stopped here by SIGTERM, as a scheduler)."""
    run = tmp_path / "same"
    args = [*TINY, "trainer.max_epochs=100000", f"hydra.run.dir={run}"]
    first = subprocess.Popen([sys.executable, "-m", "gan.train", *args], cwd=tmp_path,
                             env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.time() + 300
    while not (run / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.2)  # the first one trains
    second = run_module("gan.train", *args, cwd=tmp_path, check=False)
    line = one_line(second.returncode, second.stdout, second.stderr, "train",
                    "in use by another run", f"pid {first.pid} on {socket.gethostname()}")
    assert first.poll() is None, line  # still training
    first.terminate()
    assert first.wait(timeout=300) == 143
    assert "Resume with:" in first.stderr.read()
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"
    assert not (run / lock.LOCK).exists()  # released at exit


@pytest.mark.slow
def test_a_run_killed_with_9_is_taken_over_by_its_resume(tmp_path):
    run = tmp_path / "run"
    args = [*TINY, "trainer.max_epochs=50", f"hydra.run.dir={run}"]
    proc = subprocess.Popen([sys.executable, "-m", "gan.train", *args], cwd=tmp_path,
                            env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.5)
    proc.kill()
    proc.wait()
    assert json.loads((run / lock.LOCK).read_text())["pid"] == proc.pid  # left behind
    epoch = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    again = run_module("gan.train", *TINY, f"trainer.max_epochs={epoch + 2}",
                       f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={run}",
                       cwd=tmp_path)
    assert f"taking over {run / lock.LOCK}" in again.stderr
    assert f"pid {proc.pid}" in again.stderr and "is gone" in again.stderr
    assert (run / ".hydra" / "config.1.yaml").is_file()  # the killed run's config, kept


# ---- the report distrusts its inputs -------------------------------------------------------

def test_report_names_unreadable_runs_and_writes_the_rest(tmp_path):
    from gan.sweeps.report import make_report
    from tests.test_report import make_run

    make_run(tmp_path, "0_ok", seed=0, lr_g=2e-4, fid=20.0)
    bad_metrics = make_run(tmp_path, "1_metrics", seed=1, lr_g=2e-4, fid=21.0)
    (bad_metrics / "metrics.json").write_text('{"metrics": {"val/fid": 2')
    bad_status = make_run(tmp_path, "2_status", seed=2, lr_g=2e-4, fid=22.0)
    (bad_status / "status.json").write_text("\x00\x00 not json")
    report = make_report([tmp_path])
    status = {r.dir.name: r.status for r in report.runs}
    assert status == {"0_ok": "ok", "1_metrics": "unreadable", "2_status": "unreadable"}
    assert report.groups[0].counts() == {"ok": 1, "diverged": 0, "failed": 2}
    md = (report.out / "report.md").read_text()
    assert "1_metrics` (metrics.json" in md and "2_status` (status.json" in md
    assert (report.out / "mosaic.png").is_file()


# ---- user photos in MNIST's form -----------------------------------------------------------

def photo(paper: float, ink: float, seed: int = 0) -> Image.Image:
    """A "0" off centre in a 200x200 photo: paper and ink levels in [0, 1], sensor noise."""
    x = np.full((200, 200), paper, np.float32)
    yy, xx = np.indices(x.shape)
    x[np.abs(np.hypot(yy - 93, xx - 108) - 46) < 8] = ink
    x += np.random.default_rng(seed).normal(0, 0.01, x.shape)
    return Image.fromarray((x.clip(0, 1) * 255).astype(np.uint8))


PHOTOS = {"dim": (0.4, 0.1), "bright": (0.95, 0.05), "inverted": (0.05, 0.9),
          "low_contrast": (0.6, 0.45)}


@pytest.mark.parametrize("name", PHOTOS)
def test_photos_become_mnist_digits(name):
    x = digits(photo(*PHOTOS[name]))
    ys, xs = np.indices(x.shape)
    cy, cx = (ys * x).sum() / x.sum(), (xs * x).sum() / x.sum()
    # MNIST's centre of mass: 14.00 +- 0.29 (whole-pixel shifts), not the field's 13.5
    assert abs(cy - 14.0) <= 0.5 and abs(cx - 14.0) <= 0.5, (cy, cx)
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    assert border.max() < 0.05 and x.max() > 0.95  # light ink on black, whatever the photo
    ink = x[x > 0.1]
    assert 0.35 < (ink > 0.9).mean() < 0.75  # MNIST: 50 % of its ink pixels above 0.9


def test_without_the_contrast_step_faint_strokes_stay_faint():
    ink = digits(photo(*PHOTOS["low_contrast"]), Steps(contrast=False))
    ink = ink[ink > 0.1]
    assert (ink > 0.9).mean() < 0.2


def test_dim_photo_is_not_blank():
    x = digits(photo(0.4, 0.1))  # grey paper, dark ink: once "has no ink ... differ by 0.000"
    assert (x > 0.5).sum() > 20
