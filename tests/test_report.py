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
from gan.sweeps.report import load_run, make_report, mosaic_size, t_interval


def make_run(root: Path, name: str, *, seed: int, lr_g: float, loss: str = "bce",
             fid: float | None = None, status: str | None = "done", budget=("images", 1000),
             curve: list[float] = (), failed: bool = False, n_critic: int = 1,
             extra: dict | None = None) -> Path:
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
                   "val/recall": 0.1 * seed, "val/coverage": 0.3, "val/classes_covered": 10.0,
                   "val/min_class_share": 0.08, **{f"val/{k}": v for k, v in (extra or {}).items()}}
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
    a, b, c = report.groups
    assert [g.outcome.median for g in report.groups] == [12.0, 13.0, 31.0]  # ranked by median
    assert [len(g.runs) for g in report.groups] == [3, 3, 3]
    for group, values in ((a, A), (b, B), (c, C)):
        lo, hi = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
        assert (group.outcome.low, group.outcome.high) == pytest.approx((lo, hi), rel=1e-12)
        assert group.outcome.values == values
        assert [(r.seed, v) for r, v in group.outcomes] == list(enumerate(values))
        assert group.stats["kid"].mean == pytest.approx(np.mean(values) / 100)
        # recall is bounded: at n = 3 its interval is the seeds' range, not mean ± t
        assert (group.stats["recall"].low, group.stats["recall"].high) == pytest.approx((0, .2))
    # seed and its interpolations (data.seed: ${seed}) do not split groups; the loss choice
    # and lr_g differ; the loss's class comes with the choice, the optimizer's lr follows lr_g.
    assert report.differ == ["loss", "optim.generator.lr", "optim.lr_g"]
    assert a.label == "loss=bce, optim.lr_g=0.0008"  # not the keys that follow these
    assert b.label == "loss=bce"  # against the baseline (hinge, 2e-4): only what differs
    assert c.label == "loss=hinge, optim.lr_g=0.0002"  # the baseline: its full label
    # Same seeds, same data and nets, but 3 pairs: the signed-rank test cannot reach 0.05
    # (smallest p 0.25), so Mann–Whitney, exact; 3 + 3 runs cannot reach it either (0.10).
    assert a.unpaired.startswith("3 seed pairs")
    assert a.comparison.test == "Mann–Whitney"
    assert a.comparison.p == pytest.approx(stats.mannwhitneyu(A, C, method="exact").pvalue)
    assert a.comparison.shift == pytest.approx(np.median(np.subtract.outer(A, C)))
    assert a.comparison.shift_level == pytest.approx(0.9)  # all 3 + 3 has: [min, max]
    ps = sorted([a.comparison.p, b.comparison.p])
    assert sorted([a.comparison.p_holm, b.comparison.p_holm]) == pytest.approx(
        [min(1, 2 * ps[0]), max(min(1, 2 * ps[0]), ps[1])])
    assert [a.verdict, b.verdict, c.verdict] == [
        "screen: n = 3 vs 3 cannot reach p < 0.05 by ranks"] * 2 + ["baseline"]
    assert a.spent["wall_s"] == pytest.approx(11.0) and a.spent["g_step"] == pytest.approx(101)

    md = (sweep / "report" / "report.md").read_text()
    assert "- `optim.lr_g`: 0.0008 | 0.0002 | 0.0002" in md
    assert "Holm" in md and "Mann–Whitney" in md and "**Power:**" in md
    assert "Budget mismatch" not in md
    assert f"| 1 | {a.id} | {a.label} | 3/3 | 12 | 0:10 1:12 2:14 | 0/3 [0, 0.7076] |" in md
    rows = list(csv.DictReader((sweep / "report" / "report.csv").open()))
    assert [float(r["fid_median"]) for r in rows] == pytest.approx([12.0, 13.0, 31.0])
    assert rows[2]["verdict"] == "baseline" and rows[0]["test"] == "Mann–Whitney"
    assert "label_accuracy_scored_mean" not in rows[0]  # unconditional: no label accuracy


def test_without_a_baseline_the_best_is_the_reference(sweep):
    report = make_report([sweep])
    assert report.reference is report.groups[0] and report.vs == "best"
    assert [g.verdict for g in report.groups] == [
        "best", *["screen: n = 3 vs 3 cannot reach p < 0.05 by ranks"] * 2]


def test_ignore_merges_groups_and_baseline_by_key(sweep):
    report = make_report([sweep], ignore=("loss",), baseline="optim.lr_g=0.0008")
    # without loss.*, groups b and c share their config: 2 groups, 3 + 6 runs, and every run
    # of a seed that ran twice is counted (runs, not seeds, are the unit)
    assert sorted(len(g.runs) for g in report.groups) == [3, 6]
    merged = report.groups[1]
    assert merged.comparison.n == 6 and len(merged.outcomes) == 6
    assert sorted(v for _, v in merged.outcomes) == sorted(B + C)
    assert report.differ == ["optim.generator.lr", "optim.lr_g"]
    assert [g.label for g in report.groups] == ["optim.lr_g=0.0008", "optim.lr_g=0.0002"]
    # 11, 13, 18, 30, 31, 32 against 10, 12, 14: exact Mann–Whitney over all 6 + 3
    p = stats.mannwhitneyu(B + C, A, method="exact").pvalue
    assert merged.comparison.p == pytest.approx(p) and p > 0.05
    assert [g.verdict for g in report.groups] == ["baseline", "can't tell"]
    assert merged.unpaired == "a seed runs twice"  # seeds 0-2 twice: no one-to-one pairs
    with pytest.raises(ValueError, match="report.baseline=optim.lr_g=1 matches 0 groups"):
        make_report([sweep], baseline="optim.lr_g=1")


def test_bookkeeping_keys_never_split_groups(tmp_path):
    make_run(tmp_path, "0_a", seed=0, lr_g=8e-4, fid=20.0)
    resumed = make_run(tmp_path, "1_a", seed=1, lr_g=8e-4, fid=21.0)
    config = yaml.safe_load((resumed / ".hydra" / "config.yaml").read_text())
    config.update({"ckpt_path": "/x/last.ckpt", "skip_done": True, "threads": 2,
                   "save_every_n_batches": 100})
    config["trainer"]["enable_progress_bar"] = False
    (resumed / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    report = make_report([tmp_path])
    assert len(report.groups) == 1 and report.differ == []


def test_labels_against_a_baseline_name_the_option_not_the_keys_under_it(tmp_path):
    for seed in range(3):
        make_run(tmp_path, f"{seed}_base", seed=seed, lr_g=8e-4, fid=20.0 + seed)
        make_run(tmp_path, f"{seed}_wgan", seed=seed, lr_g=8e-4, loss="wgan", n_critic=5,
                 fid=30.0 + seed)
    report = make_report([tmp_path], baseline="loss=bce")
    assert "loss.n_critic" in report.differ  # the full list keeps it
    labels = {g is report.reference: g.label for g in report.groups}
    assert labels == {True: "loss=bce, loss.n_critic=1", False: "loss=wgan"}


def test_failed_diverged_and_unreadable_runs_count_as_the_worst(tmp_path):
    for seed in range(2):
        make_run(tmp_path, f"{seed}_ok", seed=seed, lr_g=8e-4, fid=20.0 + seed)
    make_run(tmp_path, "2_failed", seed=2, lr_g=8e-4, status="failed", failed=True)
    make_run(tmp_path, "3_div", seed=0, lr_g=1e3, fid=2287.0, status="diverged")
    make_run(tmp_path, "4_div", seed=1, lr_g=1e3, fid=2000.0, status="diverged")
    make_run(tmp_path, "5_killed", seed=2, lr_g=1e3, status=None)  # no status, no metrics
    broken = make_run(tmp_path, "6_broken", seed=3, lr_g=8e-4, fid=5.0)
    (broken / "metrics.json").write_text('{"metrics": {"val/fid": 5.')  # cut mid-write
    report = make_report([tmp_path])
    ok, div = report.groups
    assert broken.name in {r.dir.name for r in ok.runs}
    assert {r.dir.name: r.status for r in ok.runs}["6_broken"] == "unreadable"
    assert ok.counts() == {"ok": 2, "diverged": 0, "failed": 2}  # unreadable: failed
    assert div.counts() == {"ok": 0, "diverged": 2, "failed": 1}
    assert ok.success() == "2/4" and div.success() == "0/3"
    # the failures are there, as the worst rank (+inf), whatever FID they measured
    assert [(r.seed, v) for r, v in ok.outcomes] == [(0, 20.0), (1, 21.0), (2, math.inf),
                                                     (3, math.inf)]
    assert [v for _, v in div.outcomes] == [math.inf] * 3 and div.outcome.values == []
    assert ok.stats["fid"].mean == pytest.approx(20.5)      # scored seeds, said so
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| 2/4 |" in md and "| 0/3 |" in md and "2:✗" in md and "0:✗(2287)" in md
    assert "`3_div` (diverged)" in md and "`2_failed` (failed)" in md
    assert "`6_broken` (unreadable)" in md and "**Failures count:**" in md
    assert Image.open(tmp_path / "report" / "mosaic.png").size == mosaic_size(2)


# ---- planted distributions: the verdicts must find what was planted, and only that ---------

def plant(root: Path, name: str, fids, *, lr_g: float, statuses=None, first_seed: int = 0,
          **metrics) -> None:
    """One group: seed i gets fids[i]; statuses[i] `diverged` writes a flagged run."""
    for i, fid in enumerate(fids):
        status = (statuses or ["done"] * len(fids))[i]
        extra = {k: v[i] for k, v in metrics.items()}
        make_run(root, f"{name}{i}", seed=first_seed + i, lr_g=lr_g, fid=fid, status=status,
                 extra=extra)


def test_groups_drawn_alike_are_not_separated(tmp_path):
    rng = np.random.default_rng(1)
    plant(tmp_path, "base", rng.normal(40, 5, 5), lr_g=1e-4)
    for j, lr in enumerate((2e-4, 3e-4, 4e-4)):
        plant(tmp_path, f"v{j}_", rng.normal(40, 5, 5), lr_g=lr)
    report = make_report([tmp_path], baseline="optim.lr_g=0.0001")
    assert {g.verdict for g in report.groups} == {"baseline", "can't tell"}


def test_the_welch_holm_rule_keeps_its_error_rate():
    """Null planted 400 times, 3 comparisons each: the family-wise error stays near 5 %
    (the old rule's rate moved with the ratio of spreads)."""
    from gan.sweeps.stats import holm, welch

    rng = np.random.default_rng(0)
    wrong = 0
    for _ in range(400):
        base = rng.normal(40, 1, 3)
        ps = [welch(rng.normal(40, sd, 3), base).p for sd in (1, 5, 10)]
        wrong += min(holm(ps)) < 0.05
    assert wrong / 400 < 0.08


def test_a_clearly_better_group_is_found(tmp_path):
    rng = np.random.default_rng(2)
    plant(tmp_path, "base", rng.normal(40, 3, 5), lr_g=1e-4)
    plant(tmp_path, "good", rng.normal(25, 3, 5), lr_g=2e-4)
    plant(tmp_path, "same", rng.normal(40, 3, 5), lr_g=3e-4)
    report = make_report([tmp_path], baseline="optim.lr_g=0.0001")
    verdicts = {g.config["optim.lr_g"]: g.verdict for g in report.groups}
    assert verdicts == {1e-4: "baseline", 2e-4: "better", 3e-4: "can't tell"}
    assert report.groups[0].config["optim.lr_g"] == 2e-4
    good = report.groups[0].comparison
    assert good.shift_low < good.shift < good.shift_high < 0
    assert good.test == "Mann–Whitney" and good.p == pytest.approx(2 / 252)


@pytest.mark.parametrize("survivors", [[5.0], [20.0, 21.0], [5.0, 5.0]])
def test_a_group_with_diverged_seeds_never_ranks_above_a_healthy_baseline(tmp_path, survivors):
    """Its survivors are better than (or as good as) the baseline's seeds, in 2 of 3 seeds or
    in 1; it still ranks below, and is never called better."""
    plant(tmp_path, "base", [20.0, 21.0, 22.0], lr_g=1e-4)
    fids = survivors + [900.0] * (3 - len(survivors))
    statuses = ["done"] * len(survivors) + ["diverged"] * (3 - len(survivors))
    plant(tmp_path, "div", fids, lr_g=1e-2, statuses=statuses)
    for baseline in ("optim.lr_g=0.0001", None):
        report = make_report([tmp_path], baseline=baseline)
        assert [g.config["optim.lr_g"] for g in report.groups] == [1e-4, 1e-2]
        assert report.groups[1].verdict not in ("better", "better than the top-ranked")


def test_no_bounded_interval_leaves_its_range(tmp_path):
    plant(tmp_path, "a", [20.0, 21.0, 22.0], lr_g=1e-4, precision=[0.99, 1.0, 0.97],
          coverage=[0.0, 0.01, 0.0])
    plant(tmp_path, "b", [20.0, 21.0, 22.0, 25.0, 23.0, 20.0], lr_g=2e-4,
          precision=[1.0, 0.999, 0.2, 1.0, 1.0, 0.98], coverage=[0.0, 0.0, 0.3, 0.0, 0, 0.01])
    report = make_report([tmp_path])
    for g in report.groups:
        for name in ("precision", "recall", "coverage", "min_class_share", "classes_covered"):
            s = g.stats[name]
            assert 0 <= s.low <= s.mean <= s.high, (name, s)
            if name != "classes_covered":
                assert s.high <= 1, (name, s)
    small, big = sorted(report.groups, key=lambda g: len(g.runs))
    assert small.stats["precision"].how == "min–max" and big.stats["precision"].how == "t, clipped"
    # a t interval would say 0.86 ± 0.34 here: past 1
    assert t_interval(big.stats["precision"].values)[0] + t_interval(
        big.stats["precision"].values)[1] > 1


def test_the_power_line_matches_the_noncentral_t():
    from gan.sweeps.stats import detectable, power, seeds_needed

    delta = detectable(5.0, 3)
    assert power(delta, 5.0, 3) == pytest.approx(0.8, abs=1e-6)
    assert 14 < delta < 17  # the "about 16 FID" at n = 3, SD 5
    need = seeds_needed(delta / 2, 5.0)
    assert power(delta / 2, 5.0, need) >= 0.8 > power(delta / 2, 5.0, need - 1)


def test_index_and_report_share_one_verdict(tmp_path):
    from gan.io.artefacts import run_verdict

    run = make_run(tmp_path, "0_a", seed=0, lr_g=8e-4, fid=20.0)
    assert run_verdict(run) == "ok" == load_run(run).status
    (run / "status.json").write_text("{")
    assert run_verdict(run) == "unreadable" == load_run(run).status
    assert run_verdict(run, completed=False) == "failed"


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


def test_metrics_json_one_schema_read_old_and_new(tmp_path):
    """Training and gan.evaluate write one schema through one writer; files from before
    (training's `val/` keys, no protocol) read the same."""
    from gan.io.artefacts import (
        Unreadable,
        metric_value,
        protocol,
        read_metrics,
        read_metrics_file,
        write_metrics,
    )

    stamp = protocol("mnist", "667b", 500, "test", "ema", 0)
    written = write_metrics(tmp_path / "new" / "metrics.json", {"val/fid": 12.5}, stamp,
                            g_step=7)
    assert written["schema"] == 2 and written["protocol"] == stamp
    assert read_metrics(tmp_path / "new") == {"fid": 12.5}
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "metrics.json").write_text(json.dumps(
        {"dataset": "mnist", "n": 500, "metrics": {"val/fid": 12.5}}))
    assert read_metrics(tmp_path / "old") == read_metrics(tmp_path / "new")
    assert metric_value(read_metrics(tmp_path / "old"), "val/fid") == 12.5
    assert read_metrics(tmp_path) == {}  # none written
    (tmp_path / "bad.json").write_text('{"metrics": {"fid": "x"}}')
    with pytest.raises(Unreadable, match="bad.json"):
        read_metrics_file(tmp_path / "bad.json")
