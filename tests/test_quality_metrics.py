"""Stacked MNIST modes and the memorisation check (gan/metrics/modes.py, memorisation.py):
values by hand and by brute force."""

from __future__ import annotations

import math

import pytest
import torch

from gan.metrics.memorisation import memorisation_metrics, nearest, nearest_training_indices
from gan.metrics.modes import mode_metrics, stacked_modes
from tests.conftest import data_root, needs_mnist


def test_mode_metrics_by_hand():
    every_mode_once = mode_metrics(torch.arange(1000))
    assert every_mode_once == {"modes": 1000, "mode_kl": pytest.approx(0, abs=1e-12),
                               "mode_kl_log10": pytest.approx(0, abs=1e-12), "n": 1000}
    one_mode = mode_metrics(torch.full((2000,), 7))
    assert one_mode["modes"] == 1
    assert one_mode["mode_kl"] == pytest.approx(math.log(1000))
    assert one_mode["mode_kl_log10"] == pytest.approx(3.0)
    # half the samples in mode 0, the rest spread once over 1000 others... of 1000: 500 in 0,
    # 1 each in modes 1..500 -> p = (0.5, 0.001 x 500); KL = 0.5 log 500 + 0.5 log 1
    modes = torch.cat([torch.zeros(500, dtype=torch.long), torch.arange(1, 501)])
    assert mode_metrics(modes)["mode_kl"] == pytest.approx(0.5 * math.log(500))
    assert mode_metrics(modes)["modes"] == 501


def test_mode_metrics_refuse_small_samples_in_one_line():
    with pytest.raises(ValueError, match="needs at least 1,000 samples to mean anything") as err:
        mode_metrics(torch.arange(999))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="0..999"):
        mode_metrics(torch.full((1000,), 1000))


@needs_mnist
def test_stacked_modes_read_real_triples():
    """Three real test digits per image: the mode is the three labels, up to the classifier's
    ~1 % error per digit."""
    from gan.data.images import MNIST
    from gan.metrics.classifier import load_classifier

    images, labels = MNIST(root=str(data_root()), download=False).load(train=False)
    images, labels = images[:900], labels[:900]
    stacked = images.view(300, 3, 28, 28)  # (300, 3, 28, 28): digits 3i, 3i+1, 3i+2
    truth = labels.view(300, 3)
    truth = 100 * truth[:, 0] + 10 * truth[:, 1] + truth[:, 2]
    unit = stacked.float() / 127.5 - 1
    modes = stacked_modes(unit, load_classifier("mnist"), batch=64)
    assert modes.dtype == torch.long and modes.shape == (300,)
    assert (modes == truth).float().mean() > 0.95
    with pytest.raises(ValueError, match="N, 3, H, W"):
        stacked_modes(unit[:, :1], load_classifier("mnist"))


def test_nearest_matches_brute_force_in_small_chunks():
    g = torch.Generator().manual_seed(0)
    q, ref = torch.randn(37, 5, generator=g), torch.randn(50, 5, generator=g)
    brute = ((q[:, None] - ref[None]) ** 2).sum(-1).sqrt()
    d, i = nearest(q, ref, chunk_elements=120)  # 2 rows at a time
    assert torch.allclose(d, brute.min(1).values, atol=1e-5)
    assert torch.equal(i, brute.argmin(1))
    assert torch.equal(nearest_training_indices(ref[[4, 9]] + 1e-3, ref), torch.tensor([4, 9]))


def test_memorisation_ratio_sees_copies():
    g = torch.Generator().manual_seed(1)
    train, heldout = torch.randn(400, 8, generator=g), torch.randn(200, 8, generator=g)
    copies = train[:200] + 0.01 * torch.randn(200, 8, generator=g)
    fresh = torch.randn(200, 8, generator=g)
    copied = memorisation_metrics(copies, train, heldout)
    assert copied["memorisation_ratio"] < 0.1
    assert copied["sample_nn_median"] < copied["heldout_nn_median"]
    assert 0.8 < memorisation_metrics(fresh, train, heldout)["memorisation_ratio"] < 1.25
    assert copied["n"] == 200 and copied["n_train"] == 400


@needs_mnist
def test_metrics_json_shows_copying_as_a_memorisation_ratio_below_one(tmp_path):
    from gan.data.images import MNIST
    from gan.metrics.scores import compute_metrics

    data = MNIST(root=str(data_root()), download=False)
    train, test = data.load(train=True)[0], data.test_split()[0]
    unit = lambda x: x.float() / 127.5 - 1  # noqa: E731
    kw = dict(n=1000, root=str(data_root()), cache=tmp_path, memorisation=True)
    copied = compute_metrics(unit(train[:1000]), "mnist", **kw)
    fresh = compute_metrics(unit(test[-1000:]), "mnist", **kw)
    assert copied["memorisation_ratio"] < 0.05  # training images themselves: distance 0
    assert 0.8 < fresh["memorisation_ratio"] < 1.25  # held-out digits: as close as chance
    assert copied["fid"] < 10 and "sample_nn_median" in fresh
