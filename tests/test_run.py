"""Real runs, as a user types them: `python -m gan.train ...` in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gan.runs.wiring import fit
from tests.conftest import FAST, compose_train, data_root, needs_mnist, run_module

TINY = [*FAST, "model=mlp", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]"]


def events(run_dir: Path) -> EventAccumulator:
    files = sorted(run_dir.glob("events.out.tfevents.*"))
    assert files, f"no TensorBoard event file in {run_dir}: {list(run_dir.iterdir())}"
    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny 2-epoch run shared by the tests below."""
    run_dir = tmp_path_factory.mktemp("run")
    run_module("gan.train", *TINY, "trainer.max_epochs=2", f"hydra.run.dir={run_dir}",
               cwd=tmp_path_factory.mktemp("cwd"))
    return run_dir


def test_run_dir_holds_every_artefact(trained):
    assert (trained / "checkpoints" / "last.ckpt").is_file()
    assert (trained / ".hydra" / "config.yaml").is_file()
    assert {p.name for p in (trained / "samples").iterdir()} >= {
        "real.png", "epoch001.png", "epoch002.png", "final.png"}
    acc = events(trained)
    assert {"samples/real", "samples/fixed_noise"} <= set(acc.Tags()["images"])
    scalars = set(acc.Tags()["scalars"])
    assert {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "train/d_grad_norm",
            "train/g_grad_norm", "train/img_per_s"} <= scalars
    d_steps = [e.value for e in acc.Scalars("train/d_step")]
    assert d_steps == sorted(d_steps) and d_steps[-1] == 16  # 2 epochs x 8 batches


def test_nothing_lands_outside_the_run_dir(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    run_module("gan.train", *TINY, "trainer.limit_train_batches=2",
               f"hydra.run.dir={tmp_path / 'run'}", cwd=cwd)
    assert list(cwd.iterdir()) == []  # no lightning_logs/, no outputs/ when run.dir is given


def test_resume_continues_exactly(trained, tmp_path):
    """2 epochs, then resumed for a 3rd, ends bit for bit where 3 straight epochs end."""
    first = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    resumed_dir = tmp_path / "resumed"
    run_module("gan.train", *TINY, "trainer.max_epochs=3",
               f"ckpt_path={trained / 'checkpoints' / 'last.ckpt'}",
               f"hydra.run.dir={resumed_dir}", cwd=tmp_path)
    second = torch.load(resumed_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["gan_counters"] == {"d_step": 16, "g_step": 16}
    assert second["gan_counters"] == {"d_step": 24, "g_step": 24}  # one more epoch of 8
    assert second["epoch"] == first["epoch"] + 1
    adam_steps = [int(s["state"][0]["step"]) for s in second["optimizer_states"]]
    assert adam_steps == [24, 24]  # optimizer state went on from 16, not from 0
    fixed = "fixed_z"
    assert torch.equal(first["state_dict"][fixed], second["state_dict"][fixed])
    fit(compose_train([*TINY, "trainer.max_epochs=3"], tmp_path / "straight"))
    straight = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, second["state_dict"][key]), key
    assert json.loads((resumed_dir / "status.json").read_text())["status"] == "done"


@pytest.mark.slow  # two real processes (~10 s); test_readme runs gan.generate as typed
def test_generate_grid_and_tensor(trained, tmp_path):
    ckpt = trained / "checkpoints" / "last.ckpt"
    run_module("gan.generate", f"ckpt_path={ckpt}", "n=64", f"out={tmp_path / 'g.png'}",
               f"hydra.run.dir={tmp_path / 'gen'}", cwd=tmp_path)
    from PIL import Image
    assert Image.open(tmp_path / "g.png").size == (8 * 30 + 2, 8 * 30 + 2)  # 8x8, 2px padding
    run_module("gan.generate", f"ckpt_path={ckpt}", "n=300", f"out={tmp_path / 's.pt'}",
               f"hydra.run.dir={tmp_path / 'gen'}", cwd=tmp_path)
    samples = torch.load(tmp_path / "s.pt")
    assert samples.shape == (300, 1, 28, 28) and samples.dtype == torch.float32
    assert -1 <= samples.min() < samples.max() <= 1
    assert samples.std() > 0.01  # not a constant image


@pytest.mark.slow  # three real processes and 500 real digits scored (~17 s)
@needs_mnist
def test_evaluate_checkpoint_and_samples_file(trained, tmp_path):
    ckpt = trained / "checkpoints" / "last.ckpt"
    run_module("gan.evaluate", f"ckpt_path={ckpt}", "n=500", f"out={tmp_path / 'ck.json'}",
               f"hydra.run.dir={tmp_path / 'ev'}", cwd=tmp_path)
    run_module("gan.generate", f"ckpt_path={ckpt}", "n=500", f"out={tmp_path / 's.pt'}",
               f"hydra.run.dir={tmp_path / 'gen'}", cwd=tmp_path)
    run_module("gan.evaluate", f"samples={tmp_path / 's.pt'}", "n=500",
               f"out={tmp_path / 'sa.json'}", f"hydra.run.dir={tmp_path / 'ev'}", cwd=tmp_path)
    from_ckpt = json.loads((tmp_path / "ck.json").read_text())
    from_file = json.loads((tmp_path / "sa.json").read_text())
    # one metrics.json schema with training's, stamped with its protocol
    assert from_ckpt["protocol"]["n"] == 500 and from_ckpt["protocol"]["reference"] == "test"
    assert from_ckpt["protocol"]["sampler"] in ("ema", "generator")
    assert from_file["protocol"]["sampler"] == "samples file"
    # A 2-epoch net trained on random images is far from digits: 500 real training digits,
    # scored the same way against the test split, come out many times closer.
    from gan.data.images import MNIST, to_unit_range
    from gan.metrics.scores import compute_metrics

    digits = to_unit_range(MNIST(root=str(data_root()), download=False).load(train=True)[0][:500])
    real_fid = compute_metrics(digits, "mnist", n=500)["fid"]
    assert from_ckpt["metrics"]["fid"] > 10 * real_fid, (from_ckpt["metrics"]["fid"], real_fid)
    # the same seed draws the same samples either way, so the scores agree
    assert from_ckpt["metrics"] == pytest.approx(from_file["metrics"], rel=1e-4)


def test_two_job_multirun_gives_two_named_run_dirs(tmp_path):
    sweep = tmp_path / "sweep"
    run_module("gan.train", "-m", *TINY, "trainer.limit_train_batches=2", "loss=bce,hinge",
               f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2
    assert "loss=bce" in jobs[0] and "loss=hinge" in jobs[1]
    for job in jobs:
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert list((sweep / job).glob("events.out.tfevents.*"))
    assert (sweep / "multirun.yaml").is_file()
    rows = [line.split("\t") for line in (sweep / "index.tsv").read_text().splitlines()]
    assert rows[0] == ["job", "status", "metric", "peak_rss_mb", "dir", "overrides"]
    assert [r[4] for r in rows[1:]] == jobs and [r[1] for r in rows[1:]] == ["ok", "ok"]
    assert "loss=hinge" in rows[2][5] and "model.generator.hidden=[32]" in rows[2][5]


def test_failed_sweep_job_does_not_end_the_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    # loss.n_critic=0 is refused at build time: job 0 fails, job 1 must still run
    proc = run_module("gan.train", "-m", *TINY, "trainer.limit_train_batches=2",
                      "loss.n_critic=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "job 0 failed" in proc.stderr  # after job 1 ran
    failed, ok = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert "loss.n_critic=0" in failed.name
    assert "loss.n_critic must be >= 1" in (failed / "FAILED.txt").read_text()
    assert (ok / "checkpoints" / "last.ckpt").is_file()
    statuses = [line.split("\t")[1] for line in (sweep / "index.tsv").read_text().splitlines()]
    assert statuses == ["status", "failed", "ok"]


@pytest.mark.parametrize("args,message", [
    (["model=nope"], "Could not find 'model/nope'"),
    (["loss.n_critic=0"], "loss.n_critic must be >= 1"),
    (["tricks=[label_smoothing]", "loss=hinge"], "changes the real target of a loss with targets"),
    (["model=dcgan", "loss=wgan_gp", "model.discriminator.norm=batch"], "BatchNorm"),
    (["ckpt_path=/no/such.ckpt"], "does not exist"),
])
def test_bad_input_fails_with_a_clear_message(tmp_path, run_main, args, message):
    # in-process: each is refused before training (tests/test_checks.py runs real processes)
    code, out, err = run_main("gan.train", *FAST, *args, f"hydra.run.dir={tmp_path}",
                              cwd=tmp_path)
    assert code != 0
    assert message in err + out

