"""Offline metrics (gan/metrics/scores.py) and their classifier (gan/classifier.py).

Tests on real digits read GAN_DATA_DIR (CI: ../shared/data) or ./data and skip when neither
holds the raw IDX files. Sample counts are small (n=2000) to keep this file near a minute on two
CPU cores; the n=10000 reference values are checked under `-m slow`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from gan.data.images import MNIST, FashionMNIST, to_unit_range
from gan.io.config import CONF_DIR
from gan.metrics import classifier
from gan.metrics import scores as metrics

N = 2000


def _data_root(name: str) -> str:
    root = os.environ.get("GAN_DATA_DIR") or "./data"
    if not (Path(root) / name / "raw" / "t10k-images-idx3-ubyte").is_file():
        pytest.skip(f"{name} raw files not under GAN_DATA_DIR or ./data ({root}); set GAN_DATA_DIR")
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("metrics_cache")


@pytest.fixture(scope="module")
def mnist():
    """(root, train images, train labels) with images float in [-1, 1]."""
    root = _data_root("MNIST")
    images, labels = MNIST(root=root, download=False).load(train=True)
    return root, to_unit_range(images), labels


@pytest.fixture(scope="module")
def score(mnist, cache):
    root = mnist[0]
    return lambda fake, n=N: metrics.compute_metrics(fake, "mnist", n=n, root=root, cache=cache)


@pytest.fixture(scope="module")
def floor(mnist, score):
    """Real (train) vs real (test): the best any generator can do."""
    return score(mnist[1][:N])


@pytest.fixture(scope="module")
def noise(score):
    return score(torch.rand(N, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1)


@pytest.fixture(scope="module")
def one_class(mnist, score):
    _, images, labels = mnist
    return score(images[labels == 0][:N])


def test_real_vs_real_is_near_the_floor(floor, noise):
    assert floor["fid"] < 0.01 * noise["fid"], (floor, noise)
    assert floor["kid"] < 0.01 * noise["kid"], (floor, noise)
    assert floor["is"] > 9.0
    assert floor["precision"] > 0.6 and floor["recall"] > 0.6
    assert floor["density"] > 0.6 and floor["coverage"] > 0.6
    assert floor["classes_covered"] == 10
    assert floor["class_kl"] < 0.02


def test_uniform_noise_is_far_above(noise, floor):
    assert noise["fid"] > 100 * max(floor["fid"], 1e-3)
    assert noise["is"] < 2.0  # noise lands in one or two classes, with confidence or not
    assert noise["classes_covered"] <= 3


def test_precision_falls_for_noise(noise, floor):
    assert noise["precision"] < 0.05 < 0.6 < floor["precision"]
    assert noise["density"] < 0.05 < 0.6 < floor["density"]


def test_density_and_coverage_catch_noise_that_precision_misses(cache):
    """On Fashion-MNIST features, uniform noise lands in the k-NN balls of a few textured real
    outliers: precision calls it faithful, density and coverage (Naeem et al. 2020) do not."""
    root = _data_root("FashionMNIST")
    real = to_unit_range(FashionMNIST(root=root, download=False).test_split()[0][:N])
    noise = torch.rand(N, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    floor, fake = (
        metrics.compute_metrics(x, "fashion_mnist", n=N, root=root, cache=cache)
        for x in (real, noise)
    )
    assert fake["density"] < 0.5 * floor["density"]
    assert fake["coverage"] < 0.05 < 0.6 < floor["coverage"]
    assert fake["fid"] > 100 * floor["fid"]


def test_one_class_is_caught_by_histogram_and_recall(one_class, floor):
    assert one_class["classes_covered"] == 1
    assert one_class["class_kl"] == pytest.approx(math.log(10), abs=0.1)
    assert one_class["recall"] < 0.3 < floor["recall"]
    assert one_class["coverage"] < 0.3 < floor["coverage"]
    assert one_class["precision"] > 0.6  # every sample is a real zero: fidelity stays high


def test_blur_raises_fid_monotonically(mnist, cache):
    # FID alone (the full metric set costs 5x more and is covered above)
    model = classifier.load_classifier("mnist")
    real, _ = metrics.real_reference("mnist", N, root=mnist[0], cache=cache)
    images = mnist[1][:N]
    fids = []
    for sigma in (0.0, 0.5, 1.0, 1.5, 2.0):
        blurred = gaussian_blur(images, kernel_size=9, sigma=sigma) if sigma else images
        fids.append(metrics.frechet_distance(real, metrics.extract(model, blurred)[0]))
    assert all(a < b for a, b in zip(fids, fids[1:])), fids


def test_metrics_are_reproducible_and_cached(mnist, score, cache, floor):
    files = list(Path(cache).glob("real_mnist_test_*.pt"))
    assert len(files) == 1 and not list(Path(cache).glob("*.tmp"))
    metrics.clear_memo()  # force the on-disk path
    assert score(mnist[1][:N]) == floor


def test_custom_extractor_contract_matches_torchmetrics(mnist):
    """The classifier is itself a torchmetrics extractor (no 299x299 dummy forward) and the
    precomputed-feature path gives the same FID."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    model = classifier.load_classifier("mnist")
    real, fake = mnist[1][:500], mnist[1][500:1000].flip(-1)
    fid = FrechetInceptionDistance(feature=model)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    direct = fid.compute().item()
    ours = metrics.frechet_distance(model(real), model(fake))
    assert ours == pytest.approx(direct, rel=1e-4)


def test_bad_inputs_get_clear_errors(score):
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        score(torch.zeros(N, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        score(torch.rand(N, 1, 28, 28) * 255)
    with pytest.raises(ValueError, match="at least n=2000"):
        score(torch.zeros(10, 1, 28, 28))
    with pytest.raises(ValueError, match="float"):
        score(torch.zeros(N, 1, 28, 28, dtype=torch.uint8))


def test_manifold_metrics_match_brute_force():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(300, 16, generator=g), torch.randn(200, 16, generator=g) + 0.5
    ours = metrics.manifold_metrics(real, fake, k=3, chunk=7)  # odd chunks: exercise the seams
    d_rr, d_ff, d_fr = torch.cdist(real, real), torch.cdist(fake, fake), torch.cdist(fake, real)
    r_real = d_rr.kthvalue(4, dim=1).values  # 4th smallest: self + 3 neighbours
    r_fake = d_ff.kthvalue(4, dim=1).values
    inside = d_fr <= r_real  # (fake, real)
    assert ours["precision"] == pytest.approx(inside.any(1).float().mean().item())
    assert ours["recall"] == pytest.approx((d_fr.T <= r_fake).any(1).float().mean().item())
    assert ours["density"] == pytest.approx(inside.sum().item() / (3 * len(fake)))
    assert ours["coverage"] == pytest.approx(inside.any(0).float().mean().item())
    far = metrics.manifold_metrics(real, fake + 100)
    assert far["precision"] == far["recall"] == far["coverage"] == far["density"] == 0


def test_unwritable_cache_still_scores(mnist, tmp_path, caplog):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")  # mkdir under a file fails, as on a read-only mount
    metrics.clear_memo()
    feats = metrics.real_features("mnist", root=mnist[0], cache=blocker / "cache")
    assert feats.shape == (10_000, 128) and "Could not write metrics cache" in caplog.text


def test_histogram_stats_definition():
    logits = torch.full((1000, 10), -10.0)
    logits[:, 3] = 10  # everything predicted as class 3
    assert metrics.class_histogram_stats(logits) == (1.0, pytest.approx(math.log(10)))
    logits = torch.eye(10).repeat(100, 1)  # perfectly balanced
    assert metrics.class_histogram_stats(logits) == (10.0, pytest.approx(0.0, abs=1e-12))
    logits[:20] = torch.eye(10)[3]  # 20 stray votes (2 %) do not uncover a class...
    logits[:990, 0] = 100  # ...when 99 % collapse on class 0
    covered, _ = metrics.class_histogram_stats(logits)
    assert covered == 1


def test_class_shares_give_the_rarest_class():
    logits = torch.eye(10).repeat(100, 1)  # 100 of each class
    logits[:60] = torch.eye(10)[7]         # 6 of every class but 7 now go to 7
    shares = metrics.class_shares(logits)
    assert shares.sum().item() == pytest.approx(1.0)
    assert shares[7].item() == pytest.approx(0.154) and shares.min().item() == pytest.approx(0.094)


def test_wrong_checksum_names_file_hashes_and_command(tmp_path):
    shipped = classifier.weights_path("mnist")
    copy = tmp_path / shipped.name
    shutil.copy(shipped, copy)
    with open(copy, "r+b") as f:  # flip one byte of the copy, never of the shipped file
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 0xFF]))
    expected = classifier.registered_checksums()[shipped.name]
    with pytest.raises(RuntimeError) as err:
        classifier.load_classifier("mnist", path=copy)
    msg = str(err.value)
    assert str(copy) in msg and expected in msg and classifier.sha256(copy) in msg
    assert "python -m gan.classifier data=mnist" in msg


def test_missing_registry_entry_is_an_error(tmp_path, monkeypatch):
    registry = tmp_path / "checksums.json"
    registry.write_text(json.dumps({}))
    monkeypatch.setattr(classifier, "CHECKSUMS", registry)
    monkeypatch.setattr(classifier, "registered_checksums", lambda: {})
    with pytest.raises(RuntimeError, match="no entry.*\n.*gan.classifier data=mnist"):
        classifier.load_classifier("mnist")


def test_shipped_weights_are_small():
    for name in classifier.CLASSIFIED:
        assert classifier.weights_path(name).stat().st_size < 512 * 1024


@pytest.mark.parametrize("name,data_cls", [("mnist", MNIST), ("fashion_mnist", FashionMNIST)])
def test_classifier_accuracy_meets_the_bar(name, data_cls):
    root = _data_root(data_cls.dataset_cls.__name__)
    images, labels = data_cls(root=root, download=False).test_split()
    # through metrics.extract: the exact path (channels_last, batching) the metrics use
    logits = metrics.extract(classifier.load_classifier(name), images)[1]
    acc = (logits.argmax(1) == labels).float().mean().item()
    assert acc >= classifier.MIN_TEST_ACCURACY[name], acc


def test_evaluate_scores_a_samples_file(mnist, cache, tmp_path, monkeypatch, capsys):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from gan import evaluate

    samples = tmp_path / "samples.pt"
    torch.save(mnist[1][:500].clone(), samples)  # clone: a view would save all 60k images
    monkeypatch.setenv("GAN_CACHE_DIR", str(cache))
    out = tmp_path / "metrics.json"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "evaluate",
            return_hydra_config=True,
            overrides=[f"samples={samples}", "n=500", f"data.root={mnist[0]}", f"out={out}"],
        )
        HydraConfig.instance().set_config(cfg)
        assert evaluate.main.__wrapped__(cfg) == pytest.approx(
            json.loads(out.read_text())["metrics"]["fid"]
        )
        report = json.loads(out.read_text())
        stamp = report["protocol"]  # one schema with training's metrics.json
        assert report["schema"] == 2 and stamp["n"] == 500 and stamp["dataset"] == "mnist"
        assert stamp["reference"] == "test" and stamp["sampler"] == "samples file"
        assert stamp["extractor"] == classifier.extractor_id("mnist") and stamp["seed"] == 0
        # a samples file carries no requested labels: everything but label_accuracy
        # digits, not stacked triples, and a samples file carries no requested labels
        assert set(report["metrics"]) == (set(metrics.DESCRIPTIONS) - {
            "label_accuracy", "label_purity", "modes", "mode_kl", "mode_kl_log10", "modes_real",
            "mode_kl_real"}
            - {k for k in metrics.DESCRIPTIONS if k.startswith("pixel_")})
        bad = compose("evaluate", overrides=[f"samples={samples}", "n=501"])
        with pytest.raises(SystemExit) as stop:
            evaluate.main.__wrapped__(bad)
        assert stop.value.code == 2 and "at least n=501" in capsys.readouterr().err
    GlobalHydra.instance().clear()


# docs/compare.md reference values: n = 10000; real = first 10000 training images vs the test split,
# noise = seeded uniform in [-1, 1]. A change here means that table needs updating.
REFERENCE = {
    ("mnist", "real"): {
        "fid": 1.219,
        "is": 9.814,
        "precision": 0.860,
        "recall": 0.871,
        "density": 0.925,
        "coverage": 0.825,
        "classes_covered": 10,
    },
    ("mnist", "noise"): {
        "fid": 2559.6,
        "is": 1.0,
        "precision": 0.0,
        "recall": 0.0,
        "density": 0.0,
        "coverage": 0.0,
        "classes_covered": 1,
    },
    ("fashion_mnist", "real"): {
        "fid": 0.253,
        "is": 8.073,
        "precision": 0.870,
        "recall": 0.870,
        "density": 1.003,
        "coverage": 0.875,
        "classes_covered": 10,
    },
    ("fashion_mnist", "noise"): {
        "fid": 376.80,
        "is": 1.126,
        "precision": 1.0,
        "recall": 0.0,
        "density": 0.372,
        "coverage": 0.001,
        "classes_covered": 2,
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("name,data_cls", [("mnist", MNIST), ("fashion_mnist", FashionMNIST)])
def test_reference_values_at_n10000(name, data_cls, cache):
    """docs/compare.md's table, at its n = 10000."""
    root = _data_root(data_cls.dataset_cls.__name__)
    train = to_unit_range(data_cls(root=root, download=False).load(train=True)[0][:10_000])
    noise = torch.rand(10_000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for label, fake in (("real", train), ("noise", noise)):
        got = metrics.compute_metrics(fake, name, n=10_000, root=root, cache=cache)
        for key, want in REFERENCE[name, label].items():
            assert got[key] == pytest.approx(want, rel=0.01, abs=0.005), (name, label, key)


def test_label_accuracy_counts_agreement_with_requested_labels(mnist, cache):
    """A perfect conditional generator (real digits, asked for their own labels) scores ~1;
    the same images asked for shifted labels score ~0; no labels, no label_accuracy."""
    root, images, labels = mnist
    def score(asked):
        return metrics.compute_metrics(images[:N], "mnist", n=N, root=root, cache=cache,
                                       labels=asked)
    right, shifted = score(labels[:N]), score((labels[:N] + 1) % 10)
    assert right["label_accuracy"] > 0.98 and right["label_purity"] > 0.98
    # Shifted labels: every label still draws one digit, so purity stays; accuracy goes.
    assert shifted["label_accuracy"] < 0.02 and shifted["label_purity"] > 0.98
    unrelated = score(torch.randperm(N, generator=torch.Generator().manual_seed(0)) % 10)
    assert unrelated["label_purity"] < 0.25  # each label a mix of all ten digits
    assert "label_accuracy" not in score(None) and "label_purity" not in score(None)


def test_label_purity_by_hand():
    got = metrics.label_agreement(torch.tensor([4, 4, 2, 7, 7, 7]),
                                  torch.tensor([0, 0, 0, 1, 1, 2]))
    # label 0 -> {4, 4, 2}: 2 in its mode; label 1 -> {7, 7}: 2; label 2 -> {7}: 1; 5 of 6.
    assert got["label_purity"] == pytest.approx(5 / 6)
    assert got["label_accuracy"] == pytest.approx(0.0)
