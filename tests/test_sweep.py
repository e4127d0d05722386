"""Budgets, sweeps, launchers and TensorBoard hparams, run as a user runs them (the Optuna search:
tests/test_search.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from gan.io.artefacts import read_status
from gan.runs import resources as launch
from gan.sweeps.report import make_report, mosaic_size
from tests.conftest import FAST, needs_mnist, run_module

TINY = [*FAST, "model=mlp", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]",
        "trainer.max_epochs=1"]


# ---- budgets (in process: fit() as gan.train runs it) --------------------------------------

def fit_budget(fast_cfg, *overrides):
    from gan.runs.wiring import fit

    cfg = fast_cfg("model=mlp", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]",
                   *overrides)
    trainer, module = fit(cfg)
    return module, read_status(cfg.hydra.runtime.output_dir)


def test_images_budget_stops_within_one_batch(fast_cfg):
    # 8 batches of 16 per epoch: 300 images end in the 3rd batch of the third epoch
    # (trainer.max_epochs=1 does not stop it first).
    module, status = fit_budget(fast_cfg, "budget=images", "budget.value=300")
    assert status["images_seen"] == 304 == module.d_step * 16
    assert status["budget"] == {"kind": "images", "value": 300}


def test_g_steps_budget_is_exact_under_n_critic(fast_cfg):
    module, status = fit_budget(fast_cfg, "loss=wgan_gp", "loss.n_critic=5", "budget=g_steps",
                                "budget.value=7")
    assert (module.g_step, module.d_step) == (7, 35)       # n_critic=5: 5 D steps per G step
    assert (status["g_step"], status["d_step"], status["images_seen"]) == (7, 35, 35 * 16)
    assert status["img_per_s"] > 0 and status["wall_s"] >= status["train_s"] > 0


def test_time_budget_and_epoch_budget(fast_cfg):
    _, status = fit_budget(fast_cfg, "budget=time", "budget.value=1.5")
    assert 1.5 <= status["train_s"] < 10 and status["d_step"] > 8  # past one epoch of 8
    _, status = fit_budget(fast_cfg, "trainer.max_epochs=2")       # default: budget=epochs
    assert status["budget"] == {"kind": "epochs", "value": 2} and status["d_step"] == 16


def test_time_budget_counts_training_alone(fast_cfg, monkeypatch):
    """A slow grid after every G step (0.05 s each) does not eat budget=time: the clock stops
    for it, and status.json keeps training, evaluation and CPU time apart."""
    import time

    from gan.sampling.grids import SampleGrid

    monkeypatch.setattr(SampleGrid, "_log", lambda *args: time.sleep(0.05))
    module, status = fit_budget(fast_cfg, "budget=time", "budget.value=0.5",
                                "callbacks.samples.every_n_steps=1")
    grids = module.g_step + 1  # one per G step and the final one
    assert 0.5 <= status["train_s"] < 0.5 + 5.0  # the step that crossed it, on a loaded machine
    assert status["eval_s"] >= 0.05 * grids  # every grid was paused time, not training
    assert status["wall_s"] == pytest.approx(status["train_s"] + status["eval_s"], abs=0.01)
    assert status["cpu_s"] > 0 and status["img_per_s"] > 0


def test_a_compiled_runs_first_step_is_not_training_time():
    """compile=true compiles at the first step: the clock counts it as paused, not training."""
    import time
    from types import SimpleNamespace

    from gan.runs.budget import Budget

    net = torch.nn.Linear(1, 1)
    net.compile()  # lazy: nothing is compiled until the first call
    module = SimpleNamespace(generator=net, discriminator=torch.nn.Linear(1, 1), d_step=0,
                             g_step=0)
    trainer = SimpleNamespace(strategy=SimpleNamespace(), world_size=1, should_stop=False,
                              datamodule=SimpleNamespace(batch_size=1))
    budget = Budget("time", 100)
    budget.on_train_start(trainer, module)
    for seconds in (0.3, 0.1):  # the first "step" compiles, the second trains
        budget.on_train_batch_start(trainer, module, None, 0)
        time.sleep(seconds)
        budget.on_train_batch_end(trainer, module, None, None, 0)
    assert budget.eval_s() >= 0.3 and 0.1 <= budget.train_s() < 0.3


def test_bad_budget_names_the_key(fast_cfg):
    with pytest.raises(Exception, match="budget.value must be a number > 0"):  # noqa: B017
        fit_budget(fast_cfg, "budget=images", "budget.value=0")


# ---- a sweep with a failing job ------------------------------------------------------------

def hparams_of(run_dir: Path) -> tuple[dict, set[str], dict]:
    """(hparams, metric tags declared, final/* scalars) from a run's TensorBoard events."""
    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    hparams = {k: v.ListFields()[0][1] for k, v in start.session_start_info.hparams.items()}
    tags = {m.name.tag for m in exp.experiment.metric_infos}
    finals = {t: acc.Scalars(t)[-1].value for t in acc.Tags()["scalars"] if t.startswith("final/")}
    return hparams, tags, finals


@pytest.mark.slow
def test_sweep_with_a_failing_job_exits_nonzero_and_lists_it(tmp_path):
    sweep = tmp_path / "sweep"
    long_fixed = ["callbacks.samples.every_n_epochs=1", "callbacks.metrics.n_final=100",
                  "trainer.log_every_n_steps=1", "data.n=128"]
    proc = run_module("gan.train", "-m", *TINY, *long_fixed, "budget=g_steps", "budget.value=3",
                      "metric=train/g_loss", "optim.lr_d=abc,1e-3", f"hydra.sweep.dir={sweep}",
                      cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "1 of 2 sweep jobs did not finish" in proc.stderr
    # Folder names: the swept key first, then the overrides every job shares (unique to the
    # full override set, gan/sweeps/continuation.py)
    [failed] = sweep.glob("0_optim.lr_d=abc,*")
    assert f"job 0 failed: {failed}" in proc.stderr
    names = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert [n.split(",")[0] for n in names] == ["0_optim.lr_d=abc", "1_optim.lr_d=0.001"]
    rows = list(csv.DictReader((sweep / "index.tsv").open(), delimiter="\t"))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "failed"), ("1", "ok")]
    assert all(float(r["peak_rss_mb"]) > 100 for r in rows)
    assert "optim.lr_d=0.001" in rows[1]["overrides"] and "data.n=128" in rows[1]["overrides"]
    # The ok job's TensorBoard events carry its swept keys and final metrics (HPARAMS tab).
    [ok] = sweep.glob("1_optim.lr_d=0.001,*")
    hparams, tags, finals = hparams_of(ok)
    assert hparams == {"optim.lr_d": pytest.approx(1e-3), "seed": 0}  # swept keys + seed
    # data=fake: no extractor, so no FID; its metrics.json holds the pixel statistics instead
    assert tags == set(finals) == {"final/g_loss", "final/d_loss", "final/pixel_mean",
                                   "final/pixel_std", "final/pixel_mean_gap",
                                   "final/pixel_std_ratio"}
    report = make_report([sweep])
    assert sorted(g.counts()["failed"] for g in report.groups) == [0, 1]


# ---- launchers -------------------------------------------------------------------------------

def test_threads_per_parallel_job():
    joblib = OmegaConf.create({"launcher": {
        "_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
        "n_jobs": 2}})
    assert launch.parallel_jobs(joblib) == 2
    assert launch.threads_per_job(2, cores=2) == 1 and launch.threads_per_job(3, cores=16) == 5
    joblib.launcher.n_jobs = -1  # joblib: every core
    assert launch.parallel_jobs(joblib) == launch.cpu_count()
    basic = OmegaConf.create({"launcher": {"_target_": "hydra._internal.BasicLauncher"}})
    assert launch.parallel_jobs(basic) == 1


def test_each_parallel_job_gets_its_own_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    hydra_cfg = OmegaConf.create({"launcher": {"_target_": "x.JoblibLauncher", "n_jobs": 3}})
    cfg = OmegaConf.create({"threads": None, "trainer": {"accelerator": "gpu", "devices": 1}})
    with launch.job_resources(cfg, hydra_cfg, tmp_path) as a, \
            launch.job_resources(cfg, hydra_cfg, tmp_path) as b:
        with launch.job_resources(cfg, hydra_cfg, tmp_path) as c:
            assert [a, b, c] == [{"devices": [0]}, {"devices": [1]}, {"devices": [2]}]
        with launch.job_resources(cfg, hydra_cfg, tmp_path) as d:  # c's GPU was freed
            assert d == {"devices": [2]}
    cfg.trainer.accelerator = "cpu"
    with launch.job_resources(cfg, hydra_cfg, tmp_path) as e:
        assert e == {}


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path):
    sweep = tmp_path / "sweep"
    run_module("gan.train", "-m", *TINY, "budget=g_steps", "budget.value=2", "metric=null",
               "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", "seed=0,1",
               f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=600)
    rows = list(csv.DictReader((sweep / "index.tsv").open(), delimiter="\t"))
    assert sorted((r["job"], r["status"]) for r in rows) == [("0", "ok"), ("1", "ok")]
    [job] = sweep.glob("1_seed=1,*")  # then the overrides every job shares
    assert read_status(job)["g_step"] == 2


# ---- a real tiny sweep on MNIST, and its report ----------------------------------------------

@pytest.mark.slow
@needs_mnist
def test_real_tiny_sweep_report(tmp_path):
    sweep = tmp_path / "sweep"
    run_module("gan.train", "-m", "trainer.enable_progress_bar=false", "model.generator.width=8",
               "model.discriminator.width=8", "budget=images", "budget.value=640",
               "callbacks.metrics.every_n_epochs=null", "callbacks.metrics.every_n_images=320",
               "callbacks.metrics.n=500", "callbacks.metrics.n_final=500", "n_fixed=16",
               "optim.lr_g=8e-4,2e-4", "seed=0,1", "hydra/launcher=joblib",
               # 640 images make garbage (FID ~1000, one class): the guard would flag them
               "guard.max_fid=1e9", "guard.min_classes_covered=0",
               "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=900)
    [run_dir] = sweep.glob("0_optim.lr_g=0.0008,seed=0,*")  # then the shared overrides
    curve = list(csv.DictReader((run_dir / "curve.csv").open()))
    assert [int(r["images_seen"]) for r in curve] == [320, 640, 640]  # 2 evaluations + final
    assert [int(r["n"]) for r in curve] == [500, 500, 500]
    assert read_status(run_dir)["images_seen"] == 640
    hparams, tags, finals = hparams_of(run_dir)
    assert hparams["optim.lr_g"] == pytest.approx(8e-4) and "final/fid" in tags
    assert finals["final/fid"] == pytest.approx(
        json.loads((run_dir / "metrics.json").read_text())["metrics"]["fid"])

    proc = run_module("gan.report", str(sweep), cwd=tmp_path)
    assert "wrote" in proc.stdout
    report = make_report([sweep])
    assert [len(g.runs) for g in report.groups] == [2, 2]
    assert "optim.lr_g" in report.differ
    assert all(g.counts()["ok"] == 2 for g in report.groups)
    assert Image.open(sweep / "report" / "mosaic.png").size == mosaic_size(2)
    assert Image.open(sweep / "report" / "curves.png").size == (1200, 450)


def test_job_folder_names_keep_appended_sweep_keys(tmp_path):
    # `+variant=a,b` is listed as `+variant` among the swept keys; the job's own override is
    # `+variant=a`. Both must meet, or two jobs of a study without job numbers share a folder.
    from gan.io.resolvers import short_dirname
    from gan.sweeps.index import SWEPT_KEYS

    (tmp_path / SWEPT_KEYS).write_text("seed\n+variant\n")
    names = set()
    for variant in ("baseline", "mlp"):
        root = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}, "overrides": {
            "task": ["+study=tutorial", "seed=0", f"+variant={variant}"]}}})
        names.add(short_dirname("ignored", root))
    assert names == {"seed=0,variant=baseline", "seed=0,variant=mlp"}


def test_a_rerun_sweep_judges_each_job_by_its_latest_row(tmp_path):
    """A study run again into its folder (skip_done) appends rows: a job that failed once and
    finished on the rerun no longer fails the sweep, and one that failed last still does."""
    from gan.sweeps.index import COLUMNS, SweepIndex, read_index

    def index(*rows):
        lines = ["\t".join(COLUMNS)] + [f"{i}\t{status}\t\t\t{d}\tseed=0" for i, (d, status)
                                        in enumerate(rows)]
        (tmp_path / "index.tsv").write_text("\n".join(lines) + "\n")

    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    index(("a", "failed"), ("b", "ok"), ("a", "ok"))
    assert [(r["dir"], r["status"]) for r in read_index(tmp_path)] == [("a", "ok"), ("b", "ok")]
    SweepIndex().on_multirun_end(config)  # no exit
    index(("a", "ok"), ("b", "ok"), ("a", "interrupted"))
    with pytest.raises(SystemExit) as exit_info:
        SweepIndex().on_multirun_end(config)
    assert exit_info.value.code == 1
