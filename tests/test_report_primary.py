"""gan.report ranks by the primary metric the runs' data declares (metrics.json
`protocol.primary`: mode_kl for Stacked MNIST, fid otherwise and for files from before), shows
the modes, mode KL and memorisation columns, and draws the nearest training images
(nearest.png), skipping a group it cannot picture with a note."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from gan.io.usage import UsageError
from gan.report import main
from gan.sweeps import figures
from gan.sweeps.report import make_report
from tests.conftest import TINY_MLP, UNCONDITIONAL, data_root, needs_mnist, run_module
from tests.test_report import make_run


def declare(run: Path, primary: str | None, **stamp) -> Path:
    """Give the run's metrics.json a protocol stamp declaring `primary` (None: a stamp from
    before the key)."""
    report = json.loads((run / "metrics.json").read_text())
    report["schema"] = 2
    report["protocol"] = {"dataset": "stacked_mnist", **stamp}
    if primary is not None:
        report["protocol"].update(primary=primary, primary_better="lower")
    (run / "metrics.json").write_text(json.dumps(report))
    return run


def kl_curve(run: Path, values: list[float]) -> None:
    """A curve.csv as a Stacked MNIST run writes it: val/mode_kl, no val/fid column."""
    with (run / "curve.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["wall_s", "images_seen", "n", "val/modes", "val/mode_kl"])
        for i, v in enumerate(values, 1):
            w.writerow([i * 2.0, i * 500, 1000, 500, v])


# FID and mode KL disagree: by FID the first group wins, by mode KL the second.
GOOD_FID = {"fid": [10.0, 11.0, 12.0], "mode_kl": [2.0, 2.5, 3.0], "modes": [600, 620, 640]}
GOOD_KL = {"fid": [30.0, 31.0, 32.0], "mode_kl": [0.2, 0.3, 0.4], "modes": [990, 995, 1000]}


@pytest.fixture
def stacked(tmp_path):
    for j, (lr, planted) in enumerate(((8e-4, GOOD_FID), (2e-4, GOOD_KL))):
        for seed in range(3):
            run = make_run(tmp_path, f"{3 * j + seed}_run", seed=seed, lr_g=lr,
                           fid=planted["fid"][seed],
                           extra={"mode_kl": planted["mode_kl"][seed],
                                  "modes": planted["modes"][seed],
                                  "memorisation_ratio": 1.0 + 0.01 * seed})
            declare(run, "mode_kl")
            kl_curve(run, [5.0, planted["mode_kl"][seed]])
        # a failed run wrote no metrics.json: it declares nothing, and counts as the worst
        make_run(tmp_path, f"{6 + j}_failed", seed=3, lr_g=lr, status="failed", failed=True)
    return tmp_path


def test_runs_that_declare_mode_kl_rank_by_it_and_the_report_names_it(stacked, monkeypatch):
    drawn = []
    real = figures._group_curve
    monkeypatch.setattr(figures, "_group_curve",
                        lambda g, x, column="val/fid": drawn.append(column) or real(g, x, column))
    report = make_report([stacked])
    assert report.primary == "mode_kl"
    first, second = report.groups
    assert first.config["optim.lr_g"] == 2e-4 and second.config["optim.lr_g"] == 8e-4
    # each group's failed run is tied at the worst: 4 outcomes, the median between 2nd and 3rd
    assert sorted(v for _, v in first.outcomes) == [0.2, 0.3, 0.4, float("inf")]
    assert first.median == pytest.approx(0.35) and second.median == pytest.approx(2.75)
    assert first.headline == "mode KL median 0.35"
    md = (stacked / "report" / "report.md").read_text()
    assert "mode KL median (failures worst)" in md and "mode KL per seed" in md
    assert "FID median" not in md and "FID per seed" not in md
    assert "median mode KL (`mode_kl`" in md.split("## Verdicts")[0]
    assert "0:0.2 1:0.3 2:0.4 3:✗" in md  # the per-seed column holds mode KL, not FID
    assert "![mode KL curves](curves.png)" in md
    rows = list(csv.DictReader((stacked / "report" / "report.csv").open()))
    assert [r["primary"] for r in rows] == ["mode_kl", "mode_kl"]
    assert [float(r["mode_kl_median"]) for r in rows] == pytest.approx([0.35, 2.75])
    assert "fid_median" not in rows[0]  # named after what it holds
    # the curves are the mode KL column of curve.csv (there is no val/fid in it)
    assert set(drawn) == {"val/mode_kl"}
    xs, ys, _ = real(first, "images_seen", "val/mode_kl")
    assert xs == [500.0, 1000.0] and ys == pytest.approx([5.0, 0.3])


def test_mixed_primaries_are_refused_in_one_line(stacked, capsys):
    run = make_run(stacked, "7_fid", seed=4, lr_g=8e-4, fid=9.0)
    declare(run, "fid")
    with pytest.raises(UsageError, match="declare different primary metrics") as err:
        make_report([stacked])
    message = str(err.value)
    assert "\n" not in message and "fid, lower better: 1 run(s)" in message
    assert "mode_kl, lower better: 6 run(s)" in message
    with pytest.raises(SystemExit) as stop:  # as typed: exit 2, one line on stderr
        main([str(stacked)])
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err_lines) == 1
    assert "different primary metrics" in err_lines[0]


def test_a_file_from_before_the_key_declares_fid(tmp_path):
    """A stamp without `primary` (and a metrics.json without a stamp) is FID: it reports
    with runs that declare fid, ranked by FID, the columns named as they always were."""
    old = make_run(tmp_path, "0_old", seed=0, lr_g=8e-4, fid=20.0, extra={"mode_kl": 0.1})
    declare(old, None)
    make_run(tmp_path, "1_bare", seed=1, lr_g=8e-4, fid=21.0, extra={"mode_kl": 0.1})
    for seed, fid in enumerate((10.0, 11.0)):
        declare(make_run(tmp_path, f"{2 + seed}_new", seed=seed, lr_g=2e-4, fid=fid,
                         extra={"mode_kl": 5.0}), "fid")
    report = make_report([tmp_path])
    assert report.primary == "fid"
    assert [g.median for g in report.groups] == [10.5, 20.5]
    rows = list(csv.DictReader((tmp_path / "report" / "report.csv").open()))
    assert [float(r["fid_median"]) for r in rows] == [10.5, 20.5] and rows[0]["primary"] == "fid"
    md = (tmp_path / "report" / "report.md").read_text()
    assert "FID median (failures worst)" in md and "![FID curves](curves.png)" in md


def test_a_higher_is_better_primary_is_refused_in_one_line(tmp_path):
    for seed in range(2):
        run = declare(make_run(tmp_path, f"{seed}_r", seed=seed, lr_g=8e-4, fid=20.0), None)
        report = json.loads((run / "metrics.json").read_text())
        report["protocol"].update(primary="precision", primary_better="higher")
        (run / "metrics.json").write_text(json.dumps(report))
    with pytest.raises(UsageError, match="primary=precision, higher better") as err:
        make_report([tmp_path])
    assert "\n" not in str(err.value)


def test_modes_mode_kl_and_memorisation_columns(tmp_path):
    ratios = [0.01, 0.6, 0.02, 0.9, 0.05]  # a t interval would dip below 0
    modes = [1000, 998, 1000, 1000, 999]   # ... and rise past 1,000
    for seed in range(5):
        declare(make_run(tmp_path, f"{seed}_r", seed=seed, lr_g=8e-4, fid=20.0 + seed,
                         extra={"modes": modes[seed], "mode_kl": 0.1 * seed,
                                "memorisation_ratio": ratios[seed]}), "mode_kl")
    report = make_report([tmp_path])
    (group,) = report.groups
    for name, values, (low, high) in (("memorisation_ratio", ratios, (0, float("inf"))),
                                      ("modes", modes, (0, 1000))):
        s = group.stats[name]
        assert s.values == values and s.how == "t, clipped"
        assert low <= s.low < s.mean < s.high <= high
    assert group.stats["memorisation_ratio"].low == 0.0 and group.stats["modes"].high == 1000
    md = (tmp_path / "report" / "report.md").read_text()
    table = md.split("## Final metrics")[1]
    for title in ("FID (median)", "mode KL (median)", "modes (median)",
                  "memorisation ratio (median)"):
        assert title in table, title
    row = next(csv.DictReader((tmp_path / "report" / "report.csv").open()))
    for column in ("modes_scored_median", "mode_kl_scored_mean", "memorisation_ratio_scored_low"):
        assert column in row, column
    assert float(row["modes_scored_median"]) == 1000.0
    # runs without them: no such columns
    other = tmp_path / "plain"
    make_run(other, "0_r", seed=0, lr_g=8e-4, fid=20.0)
    row = next(csv.DictReader((make_report([other]).out / "report.csv").open()))
    assert not any(k.startswith(("modes", "mode_kl", "memorisation")) for k in row)


def test_the_data_declares_its_primary_and_metrics_json_records_it(fast_cfg, tmp_path):
    from gan.data.registry import primary_of
    from gan.data.stacked import StackedMNIST
    from gan.io.artefacts import declared_primary
    from gan.metrics.callback import Metrics
    from gan.runs.wiring import fit

    assert StackedMNIST.primary_metric == "mode_kl"
    assert primary_of("stacked_mnist") == ("mode_kl", "lower")
    assert primary_of("mnist") == primary_of("fashion_mnist") == primary_of(None) == (
        "fid", "lower")
    assert Metrics("stacked_mnist").primary == ("mode_kl", "lower")
    assert declared_primary({}) == declared_primary(None) == ("fid", "lower")
    fit(fast_cfg(*UNCONDITIONAL, *TINY_MLP))  # fake data: FID is its declared primary
    stamp = json.loads((tmp_path / "metrics.json").read_text())["protocol"]
    assert (stamp["primary"], stamp["primary_better"]) == ("fid", "lower")


# ---- nearest.png ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A real checkpoint: the tiny MLP trained one short epoch (on fake 1x28x28 data: what the
    report reads is the checkpoint, the extractor and the training split its stamp names)."""
    from hydra.core.global_hydra import GlobalHydra

    from gan.io.config import compose_train
    from gan.runs.wiring import fit
    from tests.conftest import FAST

    out = tmp_path_factory.mktemp("tiny")
    try:
        fit(compose_train([*FAST, *UNCONDITIONAL, *TINY_MLP], out))
    finally:
        GlobalHydra.instance().clear()
    return out / "checkpoints" / "last.ckpt"


def pictured_sweep(root: Path, ckpt: Path) -> Path:
    """Group g-a: two ok runs with checkpoints, stamped as MNIST runs with the mnist extractor;
    group g-b: ok runs that kept no checkpoint."""
    for seed in range(2):
        run = make_run(root, f"{seed}_a", seed=seed, lr_g=8e-4, fid=10.0 + seed,
                       extra={"memorisation_ratio": 0.5 + 0.1 * seed})
        declare(run, "fid", dataset="mnist", extractor_name="mnist")
        (run / "checkpoints").mkdir()
        shutil.copy(ckpt, run / "checkpoints" / "last.ckpt")
        run = make_run(root, f"{2 + seed}_b", seed=seed, lr_g=2e-4, fid=20.0 + seed)
        declare(run, "fid", dataset="mnist", extractor_name="mnist")
    return root


@needs_mnist
def test_nearest_png_shows_samples_above_their_nearest_training_images(tmp_path, tiny_ckpt,
                                                                        monkeypatch):
    from gan.data.images import MNIST
    from gan.io.image_model import load_image_model
    from gan.metrics import extractors
    from gan.metrics.scores import extract, real_features

    monkeypatch.setenv("GAN_DATA_DIR", str(data_root()))
    sweep = pictured_sweep(tmp_path, tiny_ckpt)
    report = make_report([sweep])
    (row,) = report.nearest
    assert row["group"] == report.groups[0].id and row["run"] == "0_a"
    assert row["ratio"] == pytest.approx(0.55)  # the group's median
    # the samples are the checkpoint's, seeded; the nearest images are MNIST training images,
    # the nearest in the mnist extractor's features (checked by brute force)
    samples = load_image_model(tiny_ckpt).draw(8, seed=0)
    assert torch.equal(row["samples"], samples)
    train = real_features("mnist", str(data_root()), "train", extractor="mnist")
    idx = torch.cdist(extract(extractors.load("mnist"), samples)[0], train).argmin(1)
    pixels = MNIST(root=str(data_root()), download=False).load(train=True)[0][idx]
    assert torch.equal(row["nearest"], pixels.float() / 127.5 - 1)
    image = Image.open(report.out / "nearest.png")
    assert image.size == (880, 260)  # 8 columns; one group, samples above nearest images
    md = (report.out / "report.md").read_text()
    section = md.split("## Nearest training images")[1].split("## Runs")[0]
    assert "![samples above their nearest training images](nearest.png)" in section
    assert "An FID gain from copying shows here as near-identical pairs" in section
    # the group without a checkpoint: one line, no crash
    g_b = report.groups[1]
    assert f"- {g_b.id} ({g_b.label}) skipped in nearest.png: no ok run kept " \
           "checkpoints/last.ckpt" in section


def test_groups_it_cannot_picture_are_notes_not_crashes(tmp_path, tiny_ckpt, monkeypatch):
    monkeypatch.setenv("GAN_DATA_DIR", str(tmp_path / "nowhere"))
    sweep = pictured_sweep(tmp_path / "sweep", tiny_ckpt)
    report = make_report([sweep])  # the data root is missing
    assert report.nearest == [] and not (report.out / "nearest.png").exists()
    md = (report.out / "report.md").read_text()
    assert "skipped in nearest.png: the data root of `0_a`" in md and "is missing" in md
    assert "skipped in nearest.png: no ok run kept checkpoints/last.ckpt" in md
    for run in ("0_a", "1_a"):  # no extractor in the stamp (pixel statistics only)
        declare(sweep / run, "fid", dataset="mnist", extractor_name=None)
    md = (make_report([sweep]).out / "report.md").read_text()
    assert "`0_a`'s metrics.json names no feature extractor" in md
    # a checkpoint that does not load: a note naming the error
    (sweep / "0_a" / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    declare(sweep / "0_a", "fid", dataset="mnist", extractor_name="mnist")
    monkeypatch.setenv("GAN_DATA_DIR", str(tmp_path))
    md = (make_report([sweep]).out / "report.md").read_text()
    assert "skipped in nearest.png: could not draw or match samples" in md
    # report.nearest=false: no picture, no section
    report = main([str(sweep), "report.nearest=false"])
    assert report.nearest == report.nearest_notes == []
    assert "## Nearest training images" not in (report.out / "report.md").read_text()


@pytest.mark.slow
@needs_mnist
def test_a_real_tiny_mnist_run_gets_its_nearest_training_images(tmp_path):
    """As typed: a tiny run on real MNIST, then gan.report on its folder."""
    run = tmp_path / "sweep" / "0_run"
    run_module("gan.train", "data=mnist", *UNCONDITIONAL, *TINY_MLP, "budget=images",
               "budget.value=640", "callbacks.metrics.n=500", "callbacks.metrics.n_final=500",
               # 20 steps draw noise: the garbage guard would flag it diverged (no ok run)
               "guard.max_fid=null", "guard.min_classes_covered=null",
               f"hydra.run.dir={run}", cwd=tmp_path, timeout=900)
    stamp = json.loads((run / "metrics.json").read_text())
    assert stamp["protocol"]["primary"] == "fid" and "memorisation_ratio" in stamp["metrics"]
    proc = run_module("gan.report", str(tmp_path / "sweep"), cwd=tmp_path, timeout=600)
    assert "mosaic.png, nearest.png" in proc.stdout.strip().splitlines()[-1]
    assert Image.open(tmp_path / "sweep" / "report" / "nearest.png").size == (880, 260)


def test_main_returns_whatever_metric_names(tmp_path):
    """A Stacked MNIST experiment sets `metric: val/mode_kl`: the sweeper gets the final
    mode KL from metrics.json (not FID), and `skip_done` returns the same."""
    from types import SimpleNamespace

    from gan.io.artefacts import protocol, write_metrics
    from gan.runs.wiring import finished, objective

    write_metrics(tmp_path / "metrics.json", {"val/fid": 40.0, "val/mode_kl": 0.25},
                  protocol("stacked_mnist", None, 10, "test", "ema", 0))
    (tmp_path / "status.json").write_text('{"status": "done"}')
    trainer = SimpleNamespace(default_root_dir=str(tmp_path), is_global_zero=True,
                              callback_metrics={"val/mode_kl": 9.0})
    assert objective(trainer, "val/mode_kl") == 0.25  # the final value, not the last logged
    assert objective(trainer, "val/fid") == 40.0
    assert finished(tmp_path, "val/mode_kl") == (True, 0.25)
