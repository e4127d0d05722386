"""gan.report on synthetic run dirs with known metrics: the numbers must be exact."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import stats

from gan.report import main
from gan.sweeps.report import make_report, mosaic_size, t_interval


def make_run(root: Path, name: str, *, seed: int, lr_g: float, loss: str = "bce",
             fid: float | None = None, status: str | None = "done", budget=("images", 1000),
             curve: list[float] = (), failed: bool = False, n_critic: int = 1) -> Path:
    """A run dir as gan.train leaves it: .hydra/config.yaml (raw, with interpolations),
    hydra.yaml (group choices), metrics.json, status.json, samples/final.png, curve.csv."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    config = {"seed": seed,
              "data": {"_target_": "gan.data.images.MNIST", "batch_size": 64, "seed": "${seed}"},
              "loss": {"_target_": f"gan.losses.{loss.upper()}", "n_critic": n_critic},
              "optim": {"lr_g": lr_g, "lr_d": 1e-4,
                        "generator": {"_target_": "torch.optim.Adam", "lr": "${..lr_g}"}},
              "budget": {"kind": budget[0], "value": budget[1]},
              "trainer": {"default_root_dir": "${hydra:runtime.output_dir}"}}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
        {"hydra": {"runtime": {"choices": {"loss": loss, "hydra/launcher": "basic"}}}}))
    if failed:
        (run / "FAILED.txt").write_text("Traceback ...")
    if fid is not None:
        metrics = {"val/fid": fid, "val/kid": fid / 100, "val/precision": 0.5,
                   "val/recall": 0.1 * seed, "val/coverage": 0.3, "val/classes_covered": 10.0}
        (run / "metrics.json").write_text(json.dumps({"metrics": metrics}))
        Image.fromarray(np.full((62, 62), 40 * seed, np.uint8)).save(
            (run / "samples").mkdir() or run / "samples" / "final.png")
    if status:
        (run / "status.json").write_text(json.dumps(
            {"status": status, "g_step": 100 + seed, "wall_s": 10.0 + seed, "img_per_s": 500.0,
             "images_seen": 1024, "budget": {"kind": budget[0], "value": budget[1]}}))
    if curve:
        with (run / "curve.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["wall_s", "images_seen", "g_step", "d_step", "epoch", "n", "val/fid"])
            for i, v in enumerate(curve, 1):
                w.writerow([i * 2.0, i * 500, i * 8, i * 8, 0, 2000, v])
    return run


A = [10.0, 12.0, 14.0]   # lr_g 8e-4, bce
B = [11.0, 13.0, 18.0]   # lr_g 2e-4, bce: overlaps A
C = [30.0, 31.0, 32.0]   # lr_g 2e-4, hinge: clearly worse


@pytest.fixture
def sweep(tmp_path):
    for seed in range(3):
        make_run(tmp_path, f"{seed}_a", seed=seed, lr_g=8e-4, fid=A[seed], curve=[50, 30, A[seed]])
        make_run(tmp_path, f"{3 + seed}_b", seed=seed, lr_g=2e-4, fid=B[seed],
                 curve=[60, 40, B[seed]])
        make_run(tmp_path, f"{6 + seed}_c", seed=seed, lr_g=2e-4, loss="hinge", fid=C[seed])
    return tmp_path


def test_t_interval_matches_scipy():
    values = [3.0, 5.0, 10.0, 4.0]
    mean, half = t_interval(values)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                              scale=stats.sem(values))
    assert mean == pytest.approx(5.5) and half == pytest.approx((hi - lo) / 2, rel=1e-12)
    assert t_interval([7.0]) == (7.0, math.inf)          # one seed: no spread known
    assert math.isnan(t_interval([])[0])
    assert t_interval([1.0, math.nan, 3.0]) == t_interval([1.0, 3.0])


def test_groups_stats_differing_keys_and_ranking(sweep):
    report = make_report([sweep], baseline="g3")
    by_fid = {round(g.stats["fid"][0], 6): g for g in report.groups}
    assert sorted(by_fid) == [12.0, 14.0, 31.0]
    assert [len(g.runs) for g in report.groups] == [3, 3, 3]
    a, b, c = by_fid[12.0], by_fid[14.0], by_fid[31.0]
    assert report.groups == [a, b, c]                      # ranked by mean FID
    for group, values in ((a, A), (b, B), (c, C)):
        lo, hi = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
        assert group.stats["fid"][1] == pytest.approx((hi - lo) / 2, rel=1e-12)
        assert group.stats["kid"][0] == pytest.approx(np.mean(values) / 100)
        assert group.stats["best_fid"][0] == min(values)
        assert group.stats["recall"][0] == pytest.approx(0.1)  # seeds 0, 1, 2 -> 0, .1, .2
    # seed and its interpolations (data.seed: ${seed}) do not split groups; the loss choice,
    # its target and lr_g differ; the resolved lr of the optimizer follows lr_g.
    assert report.differ == ["loss", "loss._target_", "optim.generator.lr", "optim.lr_g"]
    assert a.label == "loss=bce, optim.lr_g=0.0008"  # not the keys that follow these
    assert b.label == "loss=bce"  # against the baseline (hinge, 2e-4): only what differs
    assert c.label == "loss=hinge, optim.lr_g=0.0002"  # the baseline: its full label
    assert [a.vs_best, b.vs_best, c.vs_best] == [
        "best", "not distinguishable from the best", "worse than the best"]
    assert c.id == "g3" and [a.vs_baseline, b.vs_baseline, c.vs_baseline] == [
        "better", "better", "baseline"]
    assert a.spent["wall_s"] == pytest.approx(11.0) and a.spent["g_step"] == pytest.approx(101)

    md = (sweep / "report" / "report.md").read_text()
    assert "- `optim.lr_g`: 0.0008 | 0.0002 | 0.0002" in md
    assert "Budget mismatch" not in md
    assert f"| 1 | {a.id} | {a.label} | 3 | 3/0/0 | 12 ± 4.97 |" in md   # t(2) x 2/sqrt(3)
    rows = list(csv.DictReader((sweep / "report" / "report.csv").open()))
    assert [float(r["fid_mean"]) for r in rows] == pytest.approx([12.0, 14.0, 31.0])
    assert rows[1]["vs best"] == "not distinguishable from the best"
    assert "label_accuracy_mean" not in rows[0]  # unconditional runs: no label accuracy column


def test_ignore_merges_groups_and_baseline_by_key(sweep):
    report = make_report([sweep], ignore=("loss",), baseline="optim.lr_g=0.0008")
    # without loss.*, groups b and c share their config: 2 groups, 3 + 6 runs
    assert sorted(len(g.runs) for g in report.groups) == [3, 6]
    assert report.differ == ["optim.generator.lr", "optim.lr_g"]
    assert [g.label for g in report.groups] == ["optim.lr_g=0.0008", "optim.lr_g=0.0002"]
    assert [g.vs_baseline for g in report.groups] == ["baseline", "can't tell"]
    with pytest.raises(ValueError, match="report.baseline=optim.lr_g=1 matches 0 groups"):
        make_report([sweep], baseline="optim.lr_g=1")


def test_labels_against_a_baseline_name_the_option_not_the_keys_under_it(tmp_path):
    for seed in range(3):
        make_run(tmp_path, f"{seed}_base", seed=seed, lr_g=8e-4, fid=20.0 + seed)
        make_run(tmp_path, f"{seed}_wgan", seed=seed, lr_g=8e-4, loss="wgan", n_critic=5,
                 fid=30.0 + seed)
    report = make_report([tmp_path], baseline="loss=bce")
    assert "loss.n_critic" in report.differ  # the full list keeps it
    labels = {g.vs_baseline: g.label for g in report.groups}
    assert labels == {"baseline": "loss=bce, loss.n_critic=1", "worse": "loss=wgan"}


def test_failed_and_diverged_runs_are_shown_and_report_renders(tmp_path):
    for seed in range(2):
        make_run(tmp_path, f"{seed}_ok", seed=seed, lr_g=8e-4, fid=20.0 + seed)
    make_run(tmp_path, "2_failed", seed=2, lr_g=8e-4, status="failed", failed=True)
    make_run(tmp_path, "3_div", seed=0, lr_g=1e3, fid=2287.0, status="diverged")
    make_run(tmp_path, "4_div", seed=1, lr_g=1e3, fid=2000.0, status="diverged")
    make_run(tmp_path, "5_killed", seed=2, lr_g=1e3, status=None)  # no status, no metrics
    report = make_report([tmp_path])
    ok, div = report.groups
    assert ok.counts() == {"ok": 2, "diverged": 0, "failed": 1}
    assert div.counts() == {"ok": 0, "diverged": 2, "failed": 1}
    assert ok.stats["fid"][0] == pytest.approx(20.5)      # the failed run is not averaged
    assert div.stats["fid"][0] == pytest.approx(2143.5)   # diverged runs are: they scored
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| 3 | 2/0/1 |" in md and "| 3 | 0/2/1 |" in md
    assert "`3_div` (diverged)" in md and "`2_failed` (failed)" in md
    assert Image.open(tmp_path / "report" / "mosaic.png").size == mosaic_size(2)


def test_budget_mismatch_is_stated(tmp_path):
    make_run(tmp_path, "0_a", seed=0, lr_g=8e-4, fid=20.0, budget=("images", 1000))
    make_run(tmp_path, "1_b", seed=0, lr_g=2e-4, fid=20.0, budget=("g_steps", 50))
    md = (make_report([tmp_path]).out / "report.md").read_text()
    assert "**Budget mismatch:**" in md.split("## What differs")[0]


def test_pictures_and_command_line(sweep, tmp_path, capsys):
    report = main([str(sweep), "report.ignore=[]"])
    assert "wrote" in capsys.readouterr().out
    assert Image.open(report.out / "mosaic.png").size == mosaic_size(3) == (900, 360)
    assert Image.open(report.out / "curves.png").size == (1200, 450)
    for argv, message in (([str(tmp_path / "report")], "no run dirs"),
                          ([str(sweep), "report.bogus=1"], "Could not override 'report.bogus'")):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and len(err) == 1 and message in err[0], err
