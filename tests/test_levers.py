"""Issue 29's levers on the default recipe: the clustering options of the self-conditioned GAN,
the cluster-purity diagnostic, and the EMA's standing BatchNorm statistics (synthetic data)."""

from __future__ import annotations

import pytest
import torch

from gan.runs.wiring import fit
from gan.sampling.sampler import Sampler
from gan.tricks.ema import EMA
from gan.tricks.self_conditioned import (
    SelfConditioned,
    best_of_restarts,
    inertia,
    kmeans,
    purity,
)
from tests.conftest import FAST, TINY_DCGAN, compose_train

SELF_COND = [*TINY_DCGAN, "model.conditional=true", "tricks=[ema,self_cond]",
             "tricks.self_cond.clusters=3", "tricks.self_cond.n_images=64"]


def test_purity_is_the_share_in_each_clusters_majority_class():
    assigned = torch.tensor([0, 0, 0, 1, 1, 2])
    assert purity(assigned, torch.tensor([5, 5, 5, 2, 2, 7]), 3) == 1.0
    assert purity(assigned, torch.tensor([5, 5, 1, 2, 3, 7]), 3) == pytest.approx(4 / 6)


def test_reseeding_moves_an_empty_cluster_onto_the_data():
    g = torch.Generator().manual_seed(0)
    blobs = torch.tensor([[0.0, 0.0], [10.0, 10.0], [20.0, 0.0]])
    points = blobs.repeat_interleave(50, 0) + 0.5 * torch.randn(150, 2, generator=g)
    # one centre between the last two blobs, one far away that never wins an image
    start = torch.tensor([[0.0, 0.0], [15.0, 5.0], [500.0, 500.0]])
    kept = kmeans(points, start.clone(), iters=20)
    assert torch.equal(kept[2], start[2])  # without reseeding it stays empty, where it was
    moved = kmeans(points, start.clone(), iters=20, reseed_empty=True)
    assert torch.cdist(points, moved).argmin(1).unique().numel() == 3
    assert inertia(points, moved) < inertia(points, kept) / 10


def self_cond_of(module) -> SelfConditioned:
    return next(t for t in module.tricks if isinstance(t, SelfConditioned))


def test_restarts_keep_the_lowest_inertia_and_first_recluster_fires(fast_cfg, caplog):
    caplog.set_level("INFO", logger="gan.tricks.self_conditioned")
    cfg = fast_cfg(*SELF_COND, "tricks.self_cond.restarts=4",
                   "tricks.self_cond.reseed_empty=true", "tricks.self_cond.first_recluster=1",
                   "tricks.self_cond.encoder_bn=real")
    _, module = fit(cfg)
    trick = self_cond_of(module)
    lines = [r.getMessage() for r in caplog.records if "purity" in r.getMessage()]
    # the start, and D step 1 (recluster_every is 2000): each logs the held-out purity
    assert [line.split("D step ")[1].split(",")[0] for line in lines] == ["0", "1"]
    assert trick.restarts == 4 and trick.encoder_bn == "real"


def test_restarts_escape_a_bad_warm_start():
    g = torch.Generator().manual_seed(0)
    blobs = torch.tensor([[0.0, 0.0], [10.0, 10.0], [20.0, 0.0]])
    points = blobs.repeat_interleave(50, 0) + 0.5 * torch.randn(150, 2, generator=g)
    stuck = torch.tensor([[0.0, 0.0], [0.1, 0.0], [15.0, 5.0]])  # two centres in one blob
    once = best_of_restarts(points, stuck, 1, torch.Generator().manual_seed(1))
    best = best_of_restarts(points, stuck, 5, torch.Generator().manual_seed(1))
    assert torch.equal(once, kmeans(points, stuck))
    assert inertia(points, best) < inertia(points, once) / 10


def test_real_batchnorm_statistics_are_the_real_subsets(fast_cfg):
    cfg = fast_cfg(*SELF_COND, "tricks.self_cond.encoder_bn=real")
    _, module = fit(cfg)
    trick = self_cond_of(module)
    encoder = module.trick_state["self_cond"].encoder
    norms = [m for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms, "the tiny DCGAN D has BatchNorm after its first layer"
    # recomputing by hand: the first BatchNorm's input is the first conv block on real images
    from gan.data.images import to_unit_range
    with torch.no_grad():
        h = encoder[1](encoder[0](to_unit_range(trick.images)))  # conv, identity (no norm)
        h = encoder[3](encoder[2](h))  # LeakyReLU, conv
    torch.testing.assert_close(norms[0].running_mean, h.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad", ["tricks.self_cond.restarts=0", "tricks.self_cond.encoder_bn=fake",
                                 "tricks.self_cond.first_recluster=0",
                                 "tricks.self_cond.purity_images=-1"])
def test_bad_lever_values_are_one_line(fast_cfg, bad):
    with pytest.raises(Exception, match="tricks.self_cond"):
        fit(fast_cfg(*SELF_COND, bad))


def test_ema_standing_statistics_belong_to_the_average_and_reach_the_checkpoint(tmp_path):
    cfg = compose_train([*FAST, *SELF_COND, "tricks.ema.bn_images=300", "tricks.ema.decay=0.5"],
                        tmp_path)
    _, module = fit(cfg)
    ema_trick = next(t for t in module.tricks if isinstance(t, EMA))
    average = ema_trick.sampling_generator(module.generator)
    norm = average.project[2]
    live = module.generator.project[2].running_mean
    assert not torch.equal(norm.running_mean, live)  # not G's copied statistics
    # the statistics are those of the average's own samples, from the fixed seed
    stats = norm.running_mean.clone()
    ema_trick._stale = True
    ema_trick.sampling_generator(module.generator)
    assert torch.equal(norm.running_mean, stats)
    # gan.generate's loader draws with the same statistics
    sampler = Sampler(tmp_path / "checkpoints" / "last.ckpt")
    torch.testing.assert_close(sampler.generator.project[2].running_mean, stats)
    with pytest.raises(ValueError, match="bn_images"):
        EMA(bn_images=-1)


def test_rpgan_penalties_are_r1_and_r2():
    from gan.core.losses import RpGAN
    from gan.tricks.penalties import R1, R2

    torch.manual_seed(0)
    weight = torch.randn(1, 12)
    critic = lambda x: (x.flatten(1) * weight).sum(1) + x.flatten(1).pow(2).sum(1)  # noqa: E731
    real, fake = torch.randn(5, 1, 3, 4), torch.randn(5, 1, 3, 4)
    loss = RpGAN(r1_gamma=2.0, r2_gamma=0.5)
    expected = R1(gamma=2.0).d_penalty(critic, real, fake, 0) + R2(gamma=0.5).d_penalty(
        critic, real, fake, 0)
    torch.testing.assert_close(loss.penalty(critic, real, fake), expected)
    assert loss.double_backward and not RpGAN().double_backward
    assert RpGAN().penalty(critic, real, fake) == 0.0
    with pytest.raises(ValueError, match="r1_gamma"):
        RpGAN(r1_gamma=-1)


def test_a_checkpoint_from_before_the_levers_resumes(tmp_path):
    """A run written before these keys existed trained as their neutral values do: it resumes;
    a key set away from neutral is still refused; the purity diagnostic never decides."""
    from omegaconf import OmegaConf

    from gan.runs.resume_config import ADDED_NEUTRAL, compare

    cfg = compose_train([*FAST, "loss=rpgan", "loss.r1_gamma=0", "loss.r2_gamma=0"], tmp_path)
    saved = OmegaConf.to_container(cfg, resolve=True)
    for key in [*ADDED_NEUTRAL, "tricks.self_cond.purity_images"]:
        group, *path, leaf = key.split(".")
        node = saved[group]
        for part in path:
            node = node[part]
        node.pop(leaf)
    assert compare(saved, cfg)[0] == []
    changed = compose_train([*FAST, "loss=rpgan", "tricks.self_cond.purity_images=7"], tmp_path)
    refused = compare(saved, changed)[0]
    assert refused == ["loss.r1_gamma=<absent> (checkpoint) vs 1.0 (this run)",
                       "loss.r2_gamma=<absent> (checkpoint) vs 1.0 (this run)"]
