"""Metrics leave every random generator as they found it: a training run on a GPU must not
redraw the same noise after each evaluation."""

from __future__ import annotations

import pytest
import torch

from gan.metrics.scores import compute_metrics, kernel_distance
from tests.conftest import needs_mnist

SEEDING = ("manual_seed", "manual_seed_all", "seed", "seed_all", "set_rng_state",
           "set_rng_state_all")


@pytest.fixture
def cuda_seeding(monkeypatch):
    """Every call that would seed or set a CUDA generator (recorded, not run: no GPU here)."""
    calls = []
    for name in SEEDING:
        monkeypatch.setattr(torch.cuda, name, lambda *a, _name=name, **k: calls.append(_name))
    return calls


def test_kid_subsets_are_seeded_without_touching_cuda_or_the_cpu_stream(cuda_seeding):
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g) + 0.5
    torch.manual_seed(123)
    cuda_seeding.clear()  # the line above seeds CUDA itself; only the metrics' calls count
    before = torch.get_rng_state()
    first = kernel_distance(real, fake, subset_size=100, subsets=20, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    assert cuda_seeding == []
    torch.manual_seed(999)  # another caller state: the seeded subsets give the same value
    assert kernel_distance(real, fake, subset_size=100, subsets=20, seed=7) == first
    assert kernel_distance(real, fake, subset_size=100, subsets=20, seed=8) != first


@needs_mnist
def test_compute_metrics_leaves_the_random_state_alone(cuda_seeding):
    fake = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.manual_seed(5)
    cuda_seeding.clear()
    before = torch.get_rng_state()
    compute_metrics(fake, "mnist", n=200)
    assert cuda_seeding == []
    assert torch.equal(torch.get_rng_state(), before)


def test_metric_noise_is_drawn_on_the_cpu_whatever_the_device():
    """z comes from one CPU stream per seed and is sent to the labels' device, so a GPU run's
    metrics and gan.evaluate on the CPU score the same z. `meta` stands in for an accelerator:
    a generator there does not exist, a CPU stream sent there does."""
    from gan.core.drawing import draw

    seen = []

    def sample(z, y):
        seen.append(z.device.type)
        return torch.zeros(len(y), 1, 2, 2)

    draw(sample, 5, 3, torch.zeros(5, dtype=torch.long, device="meta"), seed=7, batch_size=2)
    assert seen == ["meta"] * 3

    zs = []
    draw(lambda z, y: zs.append(z) or torch.zeros(len(y), 1, 2, 2), 5, 3,
         torch.zeros(5, dtype=torch.long), seed=7, batch_size=2)
    expected = torch.randn(5, 3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.cat(zs), expected)
