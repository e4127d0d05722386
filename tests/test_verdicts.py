"""The verdict rule under failure (issue 28): failures tested as failures, quality by exact
ranks, honest small-n answers, intervals whose coverage is measured. Planted and seeded: each
test can fail."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from gan.io.usage import UsageError
from gan.sweeps import ranks
from gan.sweeps.report import make_report
from gan.sweeps.stats import bounded_interval, detectable, power
from gan.sweeps.verdicts import (
    BOOTSTRAP_COVERAGE,
    Arm,
    analyse,
    clopper_pearson,
    fisher,
)
from tests.test_report import plant

SCREEN_3 = "screen: n = 3 vs 3 cannot reach p < 0.05 by ranks"


# ---- the tests against scipy ------------------------------------------------------------------

def test_exact_rank_tests_match_scipy():
    rng = np.random.default_rng(3)
    for n1, n0 in ((3, 3), (3, 5), (5, 5), (7, 4), (10, 10)):
        a, b = rng.normal(0, 1, n1), rng.normal(0.8, 1, n0)
        assert ranks.mann_whitney(a, b)[1] == pytest.approx(
            stats.mannwhitneyu(a, b, method="exact").pvalue, rel=1e-9)
        assert ranks.u_counts(n1, n0).sum() == math.comb(n1 + n0, n1)
    for m in (3, 6, 9):
        d = rng.normal(0.5, 1, m)
        assert ranks.signed_rank(d)[1] == pytest.approx(
            stats.wilcoxon(d, method="exact").pvalue, rel=1e-9)
    # ties (failures at +inf): the exact permutation p over the mid-ranks, by brute force
    a, b = np.array([1.0, 2.0, math.inf]), np.array([1.5, math.inf, math.inf, 3.0])
    both, hits, total = np.concatenate([a, b]), 0, 0
    r = stats.rankdata(both)
    from itertools import combinations
    u_obs = r[:3].sum()
    for idx in combinations(range(7), 3):
        total += 1
        hits += abs(r[list(idx)].sum() - 12) >= abs(u_obs - 12) - 1e-9
    assert ranks.mann_whitney(a, b)[1] == pytest.approx(hits / total)
    assert ranks.min_p(3, 3) == pytest.approx(0.1) and ranks.min_p(5) == pytest.approx(1 / 16)


def test_failure_family_tools():
    assert fisher(0, 3, 3, 3) == pytest.approx(0.1)
    assert fisher(0, 5, 5, 5) == pytest.approx(2 / 252)
    low, high = clopper_pearson(1, 3)
    assert stats.binom.sf(0, 3, low) == pytest.approx(0.025)      # P(K >= 1 | low)
    assert stats.binom.cdf(1, 3, high) == pytest.approx(0.025)    # P(K <= 1 | high)


def test_t_power_has_no_nan_far_out():
    """nct underflowed to NaN at large noncentrality, and `detectable` read NaN as enough
    power: 32.6 instead of 35.6 FID at α = 0.05/19, SD 5.24, n = 3."""
    assert power(1e3, 1.0, 3, 0.05 / 19) == pytest.approx(1.0)
    assert detectable(5.24, 3, 0.05 / 19) == pytest.approx(35.6, abs=0.1)


def test_rank_power_is_the_tests_own():
    """Simulated power of the exact Mann–Whitney matches a direct count on fresh draws; a design
    that cannot reach α has no detectable shift."""
    rng = np.random.default_rng(5)
    hits = sum(stats.mannwhitneyu(rng.normal(1.5, 1, 5), rng.normal(0, 1, 5),
                                  method="exact").pvalue < 0.05 for _ in range(1000))
    assert ranks.rank_power(1.5, 5, 5) == pytest.approx(hits / 1000, abs=0.04)
    assert ranks.rank_detectable(3, 3) == math.inf                  # smallest p 0.10
    assert ranks.rank_detectable(5, 5, 0.05 / 11) == math.inf      # 0.0079 > 0.0045
    shift = ranks.rank_detectable(5, 5)
    assert ranks.rank_power(shift, 5, 5) >= 0.8 > ranks.rank_power(shift * 0.97, 5, 5)


# ---- planted reports: (a)-(e) --------------------------------------------------------------------

def test_a_healthy_3_against_an_all_failed_3_is_not_better(tmp_path):
    """(a) The old rule gave p ≈ 2.4e-6 here; Fisher says 0.10, and no rank test is run
    against a reference without 2 successful runs."""
    plant(tmp_path, "base", [900.0] * 3, lr_g=1e-2, statuses=["diverged"] * 3)
    plant(tmp_path, "good", [25.0, 26.0, 30.0], lr_g=1e-4)
    report = make_report([tmp_path], baseline="optim.lr_g=0.01")
    good = next(g for g in report.groups if g is not report.reference)
    assert good.comparison.fail_p == pytest.approx(0.1)
    assert good.comparison.fail_p_holm == pytest.approx(0.1)
    assert math.isnan(good.comparison.p)
    assert "better" not in good.verdict
    assert good.verdict == "screen: n = 3 vs 3 cannot reach p < 0.05 on failures (Fisher)"
    md = (report.out / "report.md").read_text()
    assert f"**Reference {report.reference.id}** has fewer than 2 successful runs" in md


def test_b_the_same_at_5_and_5_is_found_by_the_failure_test(tmp_path):
    plant(tmp_path, "base", [900.0] * 5, lr_g=1e-2, statuses=["diverged"] * 5)
    plant(tmp_path, "good", [25.0, 26.0, 30.0, 24.0, 27.0], lr_g=1e-4)
    report = make_report([tmp_path], baseline="optim.lr_g=0.01")
    good = next(g for g in report.groups if g is not report.reference)
    assert good.comparison.fail_p == pytest.approx(2 / 252)
    assert good.verdict == "fails less often"


def _failing_sweep(root: Path, failed_fid: float, ceiling: float) -> None:
    plant(root, "base", [25.0, 26.0, 30.0, 27.0, 28.0], lr_g=1e-4)
    plant(root, "flaky", [26.0, 27.0, failed_fid, 29.0, failed_fid], lr_g=2e-4,
          statuses=["done", "done", "diverged", "done", "diverged"])
    plant(root, "bad", [60.0, 61.0, 62.0, 63.0, failed_fid], lr_g=3e-4,
          statuses=["done"] * 4 + ["diverged"])
    for cfg in root.glob("*/.hydra/config.yaml"):
        config = yaml.safe_load(cfg.read_text())
        config["guard"] = {"max_fid": ceiling}
        cfg.write_text(yaml.safe_dump(config))


def _decisions(report) -> dict:
    return {g.config["optim.lr_g"]: (g.verdict, g.comparison and (
        g.comparison.p, g.comparison.p_holm, g.comparison.fail_p, g.comparison.shift))
        for g in report.groups}


def test_c_doubling_the_worst_value_changes_no_verdict_and_no_p(tmp_path):
    _failing_sweep(tmp_path / "x", 400.0, 400.0)
    _failing_sweep(tmp_path / "y", 800.0, 800.0)
    x = make_report([tmp_path / "x"], baseline="optim.lr_g=0.0001")
    y = make_report([tmp_path / "y"], baseline="optim.lr_g=0.0001")
    assert _decisions(x) == _decisions(y)
    verdicts = {k: v for k, (v, _) in _decisions(x).items()}
    assert verdicts[3e-4] == "worse"
    # an unrelated group with enormous FIDs changes no raw p and no shift of the others
    plant(tmp_path / "x", "other", [5000.0, 7000.0, 9000.0, 6000.0, 8000.0], lr_g=9e-4,
          statuses=["diverged"] * 5)
    wider = make_report([tmp_path / "x"], baseline="optim.lr_g=0.0001")
    for lr, (_, numbers) in _decisions(x).items():
        if numbers:
            again = _decisions(wider)[lr][1]
            assert (again[0], again[2], again[3]) == (numbers[0], numbers[2], numbers[3])


def test_d_duplicate_seeds_across_two_folders_count_every_run(tmp_path):
    for folder in ("first", "second"):
        plant(tmp_path / folder, "a", [20.0, 21.0, 22.0], lr_g=1e-4)
        plant(tmp_path / folder, "b", [30.0, 31.0, 32.0], lr_g=2e-4)
    report = make_report([tmp_path / "first", tmp_path / "second"],
                         baseline="optim.lr_g=0.0001")
    assert [len(g.outcomes) for g in report.groups] == [6, 6]
    b = report.groups[1]
    assert b.comparison.n == 6 and b.comparison.ref_n == 6
    assert b.unpaired == "a seed runs twice" and b.comparison.test == "Mann–Whitney"
    assert b.comparison.p == pytest.approx(2 / math.comb(12, 6))
    assert b.verdict == "worse"


def test_e_a_group_of_one_run_is_never_the_reference(tmp_path):
    plant(tmp_path, "lucky", [5.0], lr_g=1e-4)            # ranks first, one run
    plant(tmp_path, "a", [20.0, 21.0, 22.0], lr_g=2e-4)
    plant(tmp_path, "b", [30.0, 31.0, 32.0], lr_g=3e-4)
    report = make_report([tmp_path])
    assert report.groups[0].config["optim.lr_g"] == 1e-4
    assert report.reference.config["optim.lr_g"] == 2e-4
    with pytest.raises(UsageError, match="has 1 finished run"):
        make_report([tmp_path], baseline="optim.lr_g=0.0001")


# ---- pairing, protocols, unreadable groups ----------------------------------------------------

def test_pairing_checks_init_from_and_prints_r(tmp_path):
    rng = np.random.default_rng(4)
    luck = rng.normal(0, 3, 6)
    plant(tmp_path, "base", 40 + luck, lr_g=1e-4)
    plant(tmp_path, "v", 35 + luck + rng.normal(0, 0.5, 6), lr_g=2e-4)
    report = make_report([tmp_path], baseline="optim.lr_g=0.0001")
    v = report.groups[0]
    assert v.comparison.test == "Wilcoxon (paired)" and v.comparison.r > 0.9
    assert v.comparison.p == pytest.approx(2 / 64) and v.verdict == "better"
    assert "Wilcoxon (paired), r = 0." in (report.out / "report.md").read_text()
    for cfg in tmp_path.glob("v*/.hydra/config.yaml"):
        config = yaml.safe_load(cfg.read_text())
        config["init_from"] = "/pretrained/last.ckpt"
        cfg.write_text(yaml.safe_dump(config))
    report = make_report([tmp_path], baseline="optim.lr_g=0.0001")
    v = report.groups[0]
    assert v.unpaired == "init_from differ" and v.comparison.test == "Mann–Whitney"


def test_runs_measured_against_different_data_are_refused(tmp_path):
    plant(tmp_path, "a", [20.0, 21.0], lr_g=1e-4)
    plant(tmp_path, "b", [30.0, 31.0], lr_g=2e-4)
    for i, run in enumerate(sorted(tmp_path.glob("*/metrics.json"))):
        report = json.loads(run.read_text())
        report["protocol"] = {"dataset": "mnist" if i < 2 else "fashion_mnist",
                              "extractor": "667b", "reference": "test", "n": 10000}
        run.write_text(json.dumps(report))
    with pytest.raises(UsageError) as err:
        make_report([tmp_path])
    line = str(err.value)
    assert "\n" not in line and "protocol.dataset = fashion_mnist | mnist" in line
    assert "extractor" not in line.split("(")[0]


def test_a_group_whose_every_run_is_unreadable_is_named_and_failed(tmp_path):
    plant(tmp_path, "a", [20.0, 21.0, 22.0], lr_g=1e-4)
    plant(tmp_path, "b", [30.0, 31.0, 32.0], lr_g=2e-4)
    for run in tmp_path.glob("b*"):
        (run / "status.json").write_text("{")
    report = make_report([tmp_path], baseline="optim.lr_g=0.0001")
    b = report.groups[1]
    assert b.counts()["failed"] == 3 and [v for _, v in b.outcomes] == [math.inf] * 3
    assert f"**Every run unreadable:** {b.id}" in (report.out / "report.md").read_text()


# ---- (f) intervals that are what they say ----------------------------------------------

def test_f_interval_coverage_matches_its_label():
    """Measured by simulation (normal runs): each interval covers what its label says, within
    2 points. The Hodges–Lehmann interval states its own exact level; P(improvement)'s
    bootstrap states its measured coverage; the clipped t interval 95 %."""
    rng = np.random.default_rng(6)
    draws = 1000
    a = rng.normal(1, 1, (draws, 5))
    b = rng.normal(0, 1, (draws, 5))
    hits, level = 0, None
    for x, y in zip(a, b):
        _, low, high, level = ranks.hodges_lehmann(x, y, 0.95)
        hits += low <= 1 <= high
    assert abs(hits / draws - level) < 0.02
    # P(a < b) for a ~ N(1, 1), b ~ N(0, 1)
    truth = stats.norm.cdf(-1 / math.sqrt(2))
    for n, drawn in ((10, 1000),):
        a = rng.normal(1, 1, (drawn, n))
        b = rng.normal(0, 1, (drawn, n))
        hits = 0
        for i, (x, y) in enumerate(zip(a, b)):
            _, low, high = ranks.p_improvement(x, y, resamples=1000, seed=i)
            hits += low <= truth <= high
        assert abs(hits / drawn - BOOTSTRAP_COVERAGE[n]) < 0.02
    x = rng.uniform(0.2, 0.9, (draws, 5))
    hits = 0
    for row in x:
        low, high = bounded_interval(row, 0.0, 1.0)
        hits += low <= 0.55 <= high
    assert abs(hits / draws - 0.95) < 0.02


# ---- (g) the null error rate of each family ---------------------------------------------------

def test_g_each_familys_null_error_rate_stays_under_6_percent():
    """400 draws of a null design (a reference and 3 variants, 5 runs each, every run failing
    with probability 0.2 in every arm): the family-wise error of each family <= 0.06."""
    rng = np.random.default_rng(7)
    draws, wrong_quality, wrong_failure = 400, 0, 0
    for _ in range(draws):
        arms = []
        for _ in range(4):
            values = rng.normal(40, 5, 5)
            values[rng.random(5) < 0.2] = math.inf
            arms.append(Arm(list(values)))
        results = analyse([(arm, arms[0], False) for arm in arms[1:]])
        wrong_quality += any(r.p_holm < 0.05 for r in results)
        wrong_failure += any(r.fail_p_holm < 0.05 for r in results)
    assert wrong_quality / draws <= 0.06 and wrong_failure / draws <= 0.06
    assert wrong_quality > 0  # the quality family is not dead: it can err at all


def test_three_runs_each_get_the_honest_answer():
    arms = [Arm([10.0, 11.0, 12.0]), Arm([50.0, 51.0, 52.0])]
    (result,) = analyse([(arms[0], arms[1], False)])
    assert result.p == pytest.approx(0.1) and result.verdict == SCREEN_3
    assert result.shift_level == pytest.approx(0.9)


def test_the_digits_table_decides_by_the_reports_rule(capsys):
    """tools/digits_table.py re-decides the stored per-seed values with `analyse`, family by
    family: the 5-seed confirmation is its own family; no 3-seed row can pass Holm."""
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("digits_table", root / "tools/digits_table.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.analyse is analyse
    rows = tool.load_tsv(root / "docs/digits/seeds.tsv")
    decided = {name: r for _, name, _, r in tool.decide(rows)}
    assert decided["self_cond_k50 (the new default)"].verdict == "better"
    assert decided["self_cond_k50 (the new default)"].p == pytest.approx(2 / 252)
    assert decided["mog (DeLiGAN mixture prior)"].failures == 2
    assert decided["self_cond (k = 20)"].verdict.startswith("screen: n = 3 vs 5")
    assert decided["old default + DRS"].test == "Mann–Whitney"  # 5 pairs cannot reach 0.05


def test_runs_whose_config_cannot_be_read_form_a_named_failed_group(tmp_path):
    plant(tmp_path, "a", [20.0, 21.0, 22.0], lr_g=1e-4)
    plant(tmp_path, "b", [30.0, 31.0], lr_g=2e-4)
    for run in tmp_path.glob("b*"):
        (run / ".hydra" / "config.yaml").write_text("seed: [unclosed\n")
    report = make_report([tmp_path])
    broken = next(g for g in report.groups if len(g.runs) == 2)
    assert broken.counts()["failed"] == 2 and broken.label.startswith("unreadable")
    md = (report.out / "report.md").read_text()
    assert f"**Every run unreadable:** {broken.id}" in md and ".hydra/config.yaml:" in md


def test_the_levers_table_decides_by_the_reports_rule():
    """tools/levers_table.py (issue 29) re-decides the stored per-seed values of
    docs/digits/levers.tsv with the report's rule: the new default's 5 seeds against the old
    default's 5 are their own family; a one-seed lever is a screen."""
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("levers_table", root / "tools/levers_table.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    rows = tool.load(root / "docs/digits/levers.tsv")
    decided = {name: r for _, name, _, r in tool.decide(rows, tool.FAMILIES)}
    confirmation = decided[tool.NEW + " vs old"]
    assert confirmation.n == 5 and confirmation.failures == 0
    assert confirmation.verdict == "better" and confirmation.p == pytest.approx(2 / 252)
    one_seed = [r for name, r in decided.items() if len(rows[name]["seeds"]) == 1]
    assert one_seed and all(r.verdict.startswith("screen") for r in one_seed)
    summary = "\n".join(tool.summary(rows))
    assert "| " + tool.NEW + " | 5/5 |" in summary
