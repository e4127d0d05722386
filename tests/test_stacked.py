"""Stacked MNIST (gan/data/stacked.py): three independent digits per image, label = mode,
gathered by index from the MNIST IDX files."""

from __future__ import annotations

import pytest
import torch

from gan.data.stacked import StackedImages, StackedMNIST
from tests.conftest import data_root, needs_mnist


def test_stacked_images_gather_by_index():
    digits = torch.arange(5 * 2 * 2, dtype=torch.uint8).view(5, 2, 2)
    triples = torch.tensor([[0, 1, 2], [4, 4, 3]])
    images = StackedImages(digits, triples)
    assert len(images) == 2 and images.shape == (2, 3, 2, 2) and images.dtype == torch.uint8
    assert torch.equal(images[torch.tensor([1])][0, 2], digits[3])
    assert torch.equal(images[:1][0], digits[:3])  # slices, as grids read the first images
    assert torch.equal(images.materialize()[1, 0], digits[4])


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="data.n_train=0"):
        StackedMNIST(n_train=0, root=".")


@needs_mnist
def test_stacked_mnist_from_the_idx_files():
    from gan.data.images import MNIST, ShuffledBatches

    dm = StackedMNIST(n_train=500, n_test=200, root=str(data_root()), download=False)
    assert dm.img_shape == (3, 28, 28) and dm.num_classes == 1000 and dm.train_size() == 500
    dm.setup("fit")
    digits, labels = MNIST(root=str(data_root()), download=False).load(train=True)
    images, modes = dm.train_images, dm.train_labels
    assert len(images) == 500 and modes.min() >= 0 and modes.max() < 1000
    triples = dm.triples(True, 60_000)
    i = 17  # image i's channels are its three digits, its label their mode
    assert all(torch.equal(images[i][c], digits[triples[i, c], 0]) for c in range(3))
    d = labels[triples[i]]
    assert modes[i] == 100 * d[0] + 10 * d[1] + d[2]
    # the same triples for every run seed (triple_seed picks them), others for the test split
    again = StackedMNIST(n_train=500, n_test=200, seed=3, root=str(data_root()), download=False)
    assert torch.equal(again.triples(True, 60_000), triples)
    assert not torch.equal(dm.triples(False, 60_000)[:200], triples[:200])
    test_images, test_modes = dm.test_split()
    assert isinstance(test_images, torch.Tensor) and test_images.shape == (200, 3, 28, 28)
    x, y = next(iter(ShuffledBatches(images, modes, batch_size=32)))
    assert x.shape == (32, 3, 28, 28) and x.dtype == torch.float32 and y.shape == (32,)
    assert -1 <= x.min() and x.max() <= 1


def test_features_are_read_from_gathered_images_as_from_a_tensor():
    """The training split stays index triples (StackedImages); the memorisation check reads its
    features slice by slice, the same as from the materialised tensor."""
    from gan.metrics.scores import extract

    class Toy(torch.nn.Module):
        def features_and_logits(self, x):
            return x.flatten(1)[:, :4], x.mean((1, 2, 3))[:, None]

    g = torch.Generator().manual_seed(0)
    digits = torch.randint(0, 256, (9, 28, 28), dtype=torch.uint8, generator=g)
    images = StackedImages(digits, torch.randint(0, 9, (23, 3), generator=g))
    f, y = extract(Toy(), images, batch=5)
    f_ref, y_ref = extract(Toy(), images.materialize(), batch=5)
    assert f.shape == (23, 4) and torch.equal(f, f_ref) and torch.equal(y, y_ref)


@pytest.mark.slow
@needs_mnist
def test_stacked_mnist_trains_and_reports_modes(tmp_path):
    """As typed but for the budget: every net builds for 3 channels, data=stacked_mnist picks
    the per-channel digit extractor, and metrics.json holds the papers' modes and KL beside the
    memorisation check (read from the gathered training triples)."""
    import json

    from tests.conftest import run_module

    run_module("gan.train", "data=stacked_mnist", "budget=images", "budget.value=2000",
               "callbacks.metrics.n=1000", "callbacks.metrics.n_final=1000",
               # 2,000 images draw few modes yet: the garbage guard is not what this tests
               "guard.min_classes_covered=null",
               f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, timeout=900)
    assert '"status": "done"' in (tmp_path / "run" / "status.json").read_text()
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    metrics = written["metrics"]  # schema 2: the values sit under `metrics`
    assert 1 <= metrics["modes"] <= 1000 and metrics["mode_kl"] >= 0
    # the data declares what ranks its runs (gan.report): mode KL, lower better
    assert (written["protocol"]["primary"], written["protocol"]["primary_better"]) == (
        "mode_kl", "lower")
    assert metrics["memorisation_ratio"] > 0


def test_final_metrics_default_to_the_datas_protocol_n():
    """metrics.json's n is the data's protocol: the papers' 26,000 for Stacked MNIST, 10,000
    for digits; an explicit callbacks.metrics.n_final still wins."""
    from gan.metrics.callback import Metrics

    assert Metrics("stacked_mnist").n_final == 26_000
    assert Metrics("mnist").n_final == 10_000 and Metrics("fake").n_final == 10_000
    assert Metrics("stacked_mnist", n_final=1000).n_final == 1000


def test_metrics_setup_refuses_more_samples_than_the_reference_and_drops_the_fid_guard():
    """Before any training: n_final beyond the held-out images is one line (it once failed only
    at the end, and the run was called diverged); Stacked MNIST is scored by mode KL, so the
    FID guard (digit-feature units) is off there and kept for digits."""
    from types import SimpleNamespace

    from gan.data.images import MNIST
    from gan.io.usage import UsageError
    from gan.metrics.callback import Metrics
    from tests.toy_family import PixelGaussian

    def set_up(metrics, data, shape):
        metrics.setup(SimpleNamespace(datamodule=data), PixelGaussian(shape), "fit")
        return metrics

    stacked = StackedMNIST(root=".", download=False)
    with pytest.raises(UsageError, match=r"callbacks.metrics.n_final=60000 exceeds the 50,000 "
                                         r"held-out images of data=stacked_mnist") as err:
        set_up(Metrics("stacked_mnist", n_final=60_000), stacked, (3, 28, 28))
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match="callbacks.metrics.n_final=26000 exceeds the 10,000"):
        set_up(Metrics("mnist", n_final=26_000), MNIST(root=".", download=False), (1, 28, 28))
    assert set_up(Metrics("stacked_mnist", max_fid=400), stacked, (3, 28, 28)).max_fid is None
    digits = set_up(Metrics("mnist", max_fid=400), MNIST(root=".", download=False), (1, 28, 28))
    assert digits.max_fid == 400


@needs_mnist
def test_cached_reference_features_name_their_triples(tmp_path, monkeypatch):
    """Features of 10,000 test triples cached by an older reference are never read as the
    50,000 the metrics now compare with: the cache name says which triples they are."""
    from gan.metrics import extractors, scores

    class Mean(torch.nn.Module):
        def features_and_logits(self, x):
            return x.mean((2, 3)), x.mean((1, 2, 3))[:, None]

    monkeypatch.setattr(extractors, "load", lambda name: Mean())
    scores.clear_memo()
    sizes = []
    for size in (300, 700):
        monkeypatch.setattr(StackedMNIST, "reference_size", size)
        sizes.append(len(scores.real_features("stacked_mnist", str(data_root()), "test",
                                              cache=tmp_path, extractor="stacked_mnist")))
        scores.clear_memo()
    assert sizes == [300, 700]
    assert len(list(tmp_path.glob("real_stacked_mnist_test_triples*_seed0_*.pt"))) == 2
