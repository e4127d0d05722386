"""Issue 16, good digits without labels: each technique does what its paper says (synthetic)."""

from __future__ import annotations

import torch

from gan.data.images import FakeData
from gan.io.config import build
from gan.runs.wiring import fit
from gan.tricks.self_conditioned import SelfConditioned, kmeans, kmeans_plus_plus, match_clusters
from tests.conftest import TINY_DCGAN, data_root, needs_mnist

SELF_COND = [*TINY_DCGAN, "model.conditional=true", "tricks=[self_cond]",
             "tricks.self_cond.clusters=3", "tricks.self_cond.n_images=64"]


class GarbageLabels(FakeData):
    """FakeData's images with other, random labels: a label reader would train differently."""

    def load(self, train):
        images, _ = super().load(train)
        g = torch.Generator().manual_seed(1234)
        return images, torch.randint(0, self.num_classes, (len(images),), generator=g)


class TwoKinds(FakeData):
    """3 in 4 images all black, 1 in 4 all white: two clusters of unequal frequency."""

    def load(self, train):
        images, labels = super().load(train)
        images = torch.zeros_like(images)
        images[::4] = 255
        return images, labels


def generator_weights(cfg, datamodule):
    _, module = fit(cfg, datamodule=datamodule)
    return {k: v.clone() for k, v in module.generator.state_dict().items()}


def test_match_clusters_undoes_a_relabelling():
    old = torch.randint(0, 5, (200,), generator=torch.Generator().manual_seed(0))
    shuffle = torch.tensor([3, 0, 4, 1, 2])
    new = shuffle[old]  # the same clusters under other ids
    new[:10] = (new[:10] + 1) % 5  # and a few images moved
    perm = match_clusters(old, new, 5)
    assert torch.equal(perm[shuffle], torch.arange(5))
    assert (perm[new] == old).float().mean() >= 0.95


def test_kmeans_separates_blobs():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = torch.arange(300) % 3
    points = centres[truth] + torch.randn(300, 2, generator=g)
    found = kmeans(points, kmeans_plus_plus(points, 3, g))
    assigned = torch.cdist(points, found).argmin(1)
    assert (match_clusters(truth, assigned, 3)[assigned] == truth).all()


def test_self_cond_pseudo_labels_are_d_feature_clusters_at_data_frequency(fast_cfg):
    cfg = fast_cfg(*SELF_COND, "tricks.self_cond.clusters=2", "trainer.limit_train_batches=1")
    _, module = fit(cfg, datamodule=TwoKinds(n=128, batch_size=16, seed=0))
    trick = next(t for t in module.tricks if isinstance(t, SelfConditioned))
    kinds = (trick.images.flatten(1)[:, 0] > 0).long()  # 1: white
    # the clusters are the two kinds, and the prior their frequency (1/4 white)
    assert (match_clusters(kinds, trick.assigned, 2)[trick.assigned] == kinds).all()
    white = trick.assigned[kinds == 1][0]
    assert abs(float(module.trick_state['self_cond'].prior[white]) - float(kinds.float().mean())) < 1e-6
    # G's ids follow the prior, not a uniform draw
    drawn = trick.generator_labels(torch.zeros(4000, dtype=torch.long))
    assert abs((drawn == white).float().mean().item() - 0.25) < 0.03
    # a real batch is labelled by its cluster; reclustering an unchanged D keeps every id
    batch = torch.cat([torch.full((3, 1, 28, 28), 1.0), torch.full((3, 1, 28, 28), -1.0)])
    labels = trick.real_labels(batch, torch.zeros(6, dtype=torch.long))
    assert labels.tolist() == [int(white)] * 3 + [1 - int(white)] * 3
    before = trick.assigned.clone()
    trick.recluster()
    assert torch.equal(trick.assigned, before)


def test_self_cond_never_reads_a_dataset_label(fast_cfg):
    # Reclustering every step exercises k-means and the Hungarian matching each batch.
    cfg = fast_cfg(*SELF_COND, "tricks.self_cond.recluster_every=1")
    honest = generator_weights(cfg, build(cfg.data))
    garbage = generator_weights(cfg, GarbageLabels(n=128, batch_size=16, seed=0))
    assert all(torch.equal(honest[k], garbage[k]) for k in honest)
    # the control: a conditional GAN that is told the labels trains differently on garbage
    told = fast_cfg(*TINY_DCGAN, "model.conditional=true", "tricks=[]")
    honest = generator_weights(told, build(told.data))
    garbage = generator_weights(told, GarbageLabels(n=128, batch_size=16, seed=0))
    assert not all(torch.equal(honest[k], garbage[k]) for k in honest)


def test_self_cond_sizes_the_nets_by_its_clusters(fast_cfg):
    cfg = fast_cfg(*SELF_COND, "tricks.self_cond.clusters=13")
    _, module = fit(cfg)
    assert module.generator.label_concat.embed.num_embeddings == 13
    assert module.discriminator.projection.embed.num_embeddings == 13
    assert module.trick_state['self_cond'].prior.shape == (13,)


def test_top_k_g_learns_only_from_the_fakes_d_rates_most_real():
    from gan.core.losses import BCE
    from gan.tricks.top_k import TopK

    trick = TopK(decay=0.99, floor=0.25)
    # k is annealed per G step from the batch to the floor, and never below it
    assert [trick.k(32, t) for t in (0, 1, 50, 10_000)] == [32, 32, 19, 8]
    scores = torch.tensor([0.5, -2.0, 3.0, 1.0, -1.0, 0.0, 2.0, -3.0], requires_grad=True)
    BCE().g_loss(TopK(decay=0.5, floor=0.25).g_scores(scores, step=5)).backward()
    # k = 2 of 8: only the two highest-scored fakes (3.0 and 2.0) get a gradient
    assert scores.grad.nonzero().flatten().tolist() == [2, 6]


def test_top_k_changes_the_run(fast_cfg):
    base = fast_cfg(*TINY_DCGAN, "tricks=[]")
    top = fast_cfg(*TINY_DCGAN, "tricks=[top_k]", "tricks.top_k.decay=0.5")
    plain, topk = generator_weights(base, build(base.data)), generator_weights(top, build(top.data))
    assert not all(torch.equal(plain[k], topk[k]) for k in plain)


def test_minibatch_std_channel_is_the_groups_diversity():
    from gan.networks.minibatch_std import MinibatchStd

    layer = MinibatchStd(group_size=2)
    same = torch.ones(4, 3, 2, 2)
    assert layer(same)[:, 3].abs().max() < 1e-3  # a collapsed batch: no spread
    x = torch.stack([torch.zeros(3, 2, 2), torch.zeros(3, 2, 2), torch.zeros(3, 2, 2),
                     torch.full((3, 2, 2), 2.0)])
    out = layer(x)
    assert out.shape == (4, 4, 2, 2) and torch.equal(out[:, :3], x)
    # groups are images (0, 2) and (1, 3): only the second group differs, by 2 (std 1)
    assert out[[0, 2], 3].abs().max() < 1e-3
    assert torch.allclose(out[[1, 3], 3], torch.ones(2, 2, 2), atol=1e-3)


def test_dcgan_d_with_minibatch_std_sees_the_rest_of_the_batch(fast_cfg):
    from gan.networks.dcgan import Discriminator
    from gan.networks.minibatch_std import MinibatchStd

    torch.manual_seed(0)
    d = Discriminator((1, 28, 28), width=4, norm="none", minibatch_std=4).eval()
    plain = Discriminator((1, 28, 28), width=4, norm="none").eval()
    images = torch.rand(4, 1, 28, 28)
    other = images.clone()
    other[1:] = images[0]  # the same first image, in a collapsed batch
    assert not torch.allclose(d(images)[0], d(other)[0])
    assert torch.allclose(plain(images)[0], plain(other)[0])
    cfg = fast_cfg(*TINY_DCGAN, "+model.discriminator.minibatch_std=4")
    _, module = fit(cfg)
    assert isinstance(module.discriminator.diversity, MinibatchStd)
    assert module.discriminator.head.in_features == (8 + 1) * 7 * 7


def test_truncation_pulls_z_towards_the_mean():
    from gan.sampling.posthoc import Plain, Truncation

    labels = torch.zeros(4000, dtype=torch.long)
    identity = lambda z, y: z.reshape(-1, 1, 1, 2) / 8  # noqa: E731 (an "image" that is z)
    plain = Plain().draw(identity, 4000, 2, labels, seed=0)
    half = Truncation(psi=0.5).draw(identity, 4000, 2, labels, seed=0)
    assert torch.allclose(half, plain * 0.5)  # same z, pulled halfway to the mean
    assert Truncation(psi=0.5).describe() == {"name": "truncation", "psi": 0.5}


def test_drs_with_the_optimal_d_moves_samples_to_the_data():
    from gan.sampling.rejection import DRS

    # p_g = N(0, 1), p_data = N(1, 1): the optimal D's logit is log p_data/p_g = x - 1/2
    generator = lambda z, y: z.reshape(-1, 1, 1, 1)  # noqa: E731
    critic = lambda x, y: x.flatten() - 0.5  # noqa: E731
    labels = torch.zeros(4000, dtype=torch.long)
    drs = DRS(percentile=95.0, burn_in=4000, max_rounds=200)
    accepted = drs.draw(generator, 4000, 1, labels, seed=0, critic=critic).flatten()
    plain = DRS(percentile=0.0).draw(generator, 4000, 1, labels, seed=0, critic=critic).flatten()
    assert accepted.mean() > 0.6 > plain.mean() + 0.3  # towards the data's mean of 1
    stats = drs.describe()
    assert stats["name"] == "drs" and 0.0 < stats["acceptance_rate"] < 0.7
    assert stats["unfilled"] == 0


@needs_mnist
def test_every_metrics_json_names_its_sampler(fast_cfg, tmp_path, run_main):
    import json

    metrics = ["callbacks.metrics.dataset=mnist", f"callbacks.metrics.root={data_root()}",
               "callbacks.metrics.n=200", "callbacks.metrics.n_final=200"]
    cfg = fast_cfg(*TINY_DCGAN, *metrics, "+sampler=truncation", "sampler.psi=0.5")
    fit(cfg)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["protocol"]["posthoc"] == {"name": "truncation", "psi": 0.5}
    code, out, err = run_main("gan.evaluate", f"ckpt_path={tmp_path}/checkpoints/last.ckpt",
                              "n=200", "sampler=drs", "sampler.burn_in=200",
                              f"data.root={data_root()}", f"out={tmp_path}/eval.json",
                              cwd=tmp_path)
    assert code == 0, err
    report = json.loads((tmp_path / "eval.json").read_text())
    posthoc = report["protocol"]["posthoc"]
    assert posthoc["name"] == "drs" and 0 < posthoc["acceptance_rate"] <= 1


def test_generate_draws_self_cond_ids_at_their_checkpointed_frequency(fast_cfg, tmp_path):
    from gan.io.image_model import load_image_model

    cfg = fast_cfg(*SELF_COND, "tricks.self_cond.clusters=2", "trainer.limit_train_batches=1")
    _, module = fit(cfg, datamodule=TwoKinds(n=128, batch_size=16, seed=0))
    sampler = load_image_model(tmp_path / "checkpoints" / "last.ckpt")
    assert torch.equal(sampler.label_prior, module.trick_state['self_cond'].prior)
    assert sampler.spec.labels.kind == "clusters" and sampler.spec == module.spec
    labels = sampler.spec.labels.sample(4000, seed=0)
    white = int(module.trick_state['self_cond'].prior.argmin())  # the rarer cluster: 1 in 4
    assert abs((labels == white).float().mean().item() - 0.25) < 0.03
    assert sampler(8).shape == (8, 1, 28, 28)
