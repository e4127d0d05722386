"""Self-conditioned GAN (Liu et al., CVPR 2020): condition G and D on clusters of D's features.

A single Gaussian z must stretch across the separate digit manifolds and draws blends between
them. Told the class, the same nets draw far better digits (README: cgan). The self-conditioned
GAN gets a class-like label without labels: k-means on the discriminator's features of real
images gives each real image a pseudo-label (its cluster); G is conditioned on a cluster id, a
projection D judges (image, cluster) pairs. Every `recluster_every` D steps the clusters are
recomputed on D's newer features, starting from the previous clusters' means under those
features (the paper's initialisation), and the new ids are matched to the old ones with the
Hungarian method, so cluster j stays what G learnt as cluster j.

Unsupervised: the trick reads the training images (a seeded subset) and never their labels, nor
the shipped classifier (trained on labels). G's cluster ids are drawn at the clusters' data
frequency (DESIGN.md section 9: uniform ids over unequal clusters skew the samples); the
frequencies are the model's label prior (its `spec`), so metrics and `gan.generate` draw alike.

Between reclusterings a frozen copy of D's trunk (the state's `encoder`, eval mode) labels each
real batch by its nearest centre: the labels k-means gave, without indexing the data set. The
encoder, centres and prior are the trick's state (`trick_state.self_cond`), so checkpoints hold
them.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from gan.core.trick import Trick
from gan.data.images import to_unit_range
from gan.io.spec import LabelSpace
from gan.networks.layers import standing_batchnorm

log = logging.getLogger(__name__)
DEFAULT_CLUSTERS, DEFAULT_N_IMAGES = 50, 10000


class ClusterState(nn.Module):
    """The trick's state: the frozen encoder, the k centres (all zero until the first
    clustering: shaped now, so a checkpoint's centres load in) and their data frequencies."""

    def __init__(self, encoder: nn.Module, clusters: int, width: int):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("centres", torch.zeros(clusters, width))
        self.register_buffer("prior", torch.full((clusters,), 1.0 / clusters))


def nearest(features: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(N, F), (K, F) -> (N,) index of the nearest centre (Euclidean)."""
    return torch.cdist(features, centres.to(features.dtype)).argmin(dim=1)


def kmeans(features: torch.Tensor, centres: torch.Tensor, iters: int = 20,
           reseed_empty: bool = False) -> torch.Tensor:
    """Lloyd's k-means from the given initial centres: (N, F), (K, F) -> centres (K, F). A
    cluster left empty keeps its centre (its frequency is then 0: G never draws it), or, with
    `reseed_empty`, moves to the points farthest from their own centres (deterministic)."""
    for _ in range(iters):
        assign = nearest(features, centres)
        sums = torch.zeros_like(centres).index_add_(0, assign, features)
        counts = torch.bincount(assign, minlength=len(centres)).unsqueeze(1)
        new = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
        empty = (counts.squeeze(1) == 0).nonzero().flatten()
        if reseed_empty and len(empty):
            far = (features - centres[assign]).pow(2).sum(1).topk(len(empty)).indices
            new[empty] = features[far]
        if torch.equal(new, centres):
            break
        centres = new
    return centres


def inertia(features: torch.Tensor, centres: torch.Tensor) -> float:
    """Sum of squared distances to the nearest centre: what k-means minimises."""
    return float(torch.cdist(features, centres.to(features.dtype)).min(dim=1).values.pow(2).sum())


def best_of_restarts(features: torch.Tensor, start: torch.Tensor, restarts: int,
                     generator: torch.Generator, iters: int = 20,
                     reseed_empty: bool = False) -> torch.Tensor:
    """k-means from `start`, and from `restarts - 1` k-means++ seeds: the lowest inertia wins."""
    centres = kmeans(features, start, iters, reseed_empty)
    for _ in range(restarts - 1):
        seeds = kmeans_plus_plus(features.cpu(), len(start), generator).to(features.device)
        other = kmeans(features, seeds, iters, reseed_empty)
        if inertia(features, other) < inertia(features, centres):
            centres = other
    return centres


def purity(assigned: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Share of images whose cluster's most common label is their own (1.0: every cluster is
    one class). A diagnostic against true labels: never used in training."""
    counts = torch.zeros(k, int(labels.max()) + 1, dtype=torch.long)
    counts.index_put_((assigned.cpu(), labels.cpu().long()),
                      torch.ones(len(labels), dtype=torch.long), accumulate=True)
    return float(counts.max(dim=1).values.sum()) / len(labels)


def kmeans_plus_plus(features: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): (N, F) -> (K, F) initial centres."""
    picks = [int(torch.randint(len(features), (1,), generator=generator))]
    dist = torch.cdist(features, features[picks]).squeeze(1) ** 2
    for _ in range(k - 1):
        weights = dist if dist.sum() > 0 else torch.ones_like(dist)
        picks.append(int(torch.multinomial(weights, 1, generator=generator)))
        dist = torch.minimum(dist, torch.cdist(features, features[picks[-1:]]).squeeze(1) ** 2)
    return features[picks].clone()


def match_clusters(old: torch.Tensor, new: torch.Tensor, k: int) -> torch.Tensor:
    """The permutation `perm` (new id -> old id) that maximises how many images keep their id
    (Hungarian method on the k x k overlap matrix): `perm[new]` relabels the new clustering."""
    overlap = torch.zeros(k, k, dtype=torch.long)
    overlap.index_put_((new.cpu(), old.cpu()), torch.ones(len(old), dtype=torch.long),
                       accumulate=True)
    rows, cols = linear_sum_assignment(-overlap.numpy())
    perm = np.empty(k, dtype=np.int64)
    perm[rows] = cols
    return torch.from_numpy(perm)


class SelfConditioned(Trick):
    """`tricks=[ema,self_cond]` with `model.conditional=true`: G and a projection D conditioned
    on `clusters` k-means clusters of D's features of `n_images` real training images,
    reclustered every `recluster_every` D steps (and once at D step `first_recluster`, if set).

    The clustering levers (issue 29; docs/digits/levers.md has their verdicts):
    `restarts` k-means runs per reclustering (the warm start plus k-means++ seeds; the lowest
    inertia wins), `reseed_empty` moves an emptied centre to the worst-fitted point,
    `encoder_bn: real` re-estimates the frozen trunk's BatchNorm statistics on the real subset
    (D's running statistics mix real and fake batches). `purity_images` held-out real images
    are assigned to the clusters at each reclustering and their purity against the true labels
    is logged (`diag/cluster_purity`): a diagnostic, never read by training."""

    def __init__(self, clusters: int = DEFAULT_CLUSTERS, recluster_every: int = 2000,
                 n_images: int = DEFAULT_N_IMAGES, iters: int = 20, seed: int = 0,
                 first_recluster: int | None = None, restarts: int = 1,
                 reseed_empty: bool = False, encoder_bn: str = "running",
                 purity_images: int = 5000):
        if (clusters < 2 or recluster_every < 1 or n_images < clusters or iters < 1
                or restarts < 1 or purity_images < 0
                or (first_recluster is not None and first_recluster < 1)):
            raise ValueError(f"tricks.self_cond needs clusters >= 2, recluster_every >= 1, "
                             f"n_images >= clusters, iters >= 1, restarts >= 1, "
                             f"purity_images >= 0 and first_recluster null or >= 1, got "
                             f"clusters={clusters}, recluster_every={recluster_every}, "
                             f"n_images={n_images}, iters={iters}, restarts={restarts}, "
                             f"purity_images={purity_images}, first_recluster={first_recluster}")
        if encoder_bn not in ("running", "real"):
            raise ValueError(f"tricks.self_cond.encoder_bn must be running or real, got "
                             f"{encoder_bn!r}")
        self.label_count = clusters  # the nets embed cluster ids, not the data's classes
        self.clusters, self.recluster_every = clusters, recluster_every
        self.n_images, self.iters, self.seed = n_images, iters, seed
        self.first_recluster, self.restarts = first_recluster, restarts
        self.reseed_empty, self.encoder_bn = reseed_empty, encoder_bn
        self.purity_images = purity_images
        self.heldout: tuple[torch.Tensor, torch.Tensor] | None = None
        self.trainer = None
        self.module: nn.Module | None = None
        self.images: torch.Tensor | None = None
        self.assigned: torch.Tensor | None = None  # the subset's current cluster ids

    def fit_data(self, n_images: int) -> None:
        """Settings against the data. A value set on purpose (not the default) that the data
        cannot give is refused in one line (clusters=100000 on MNIST's 60,000 images would run
        for hours); the defaults adapt to a small folder: every image is clustered, and k is
        lowered to the number of images, so no cluster is empty (G never draws an empty one)."""
        if self.n_images > n_images and self.n_images != DEFAULT_N_IMAGES:
            raise ValueError(f"tricks.self_cond.n_images={self.n_images}, but the training data "
                             f"holds {n_images} images: set tricks.self_cond.n_images<={n_images}")
        available = min(self.n_images, n_images)
        if self.clusters > available and self.clusters != DEFAULT_CLUSTERS:
            raise ValueError(f"tricks.self_cond.clusters={self.clusters}, but only {available} "
                             f"images are clustered: set tricks.self_cond.clusters<={available}")
        if available < 2:
            raise ValueError(f"tricks=[self_cond] clusters the training images, and the data "
                             f"holds {n_images}: give it at least 2, or leave self_cond out")
        if available < self.n_images:
            log.warning("tricks.self_cond: the data holds %d images, fewer than n_images=%d: "
                        "clustering all %d", n_images, self.n_images, available)
            self.n_images = available
        if self.clusters > available:
            log.warning("tricks.self_cond: %d images cannot fill clusters=%d: using %d clusters "
                        "(set tricks.self_cond.clusters= to choose)", available, self.clusters,
                        available)
            self.clusters = self.label_count = available

    def setup(self, trainer, pl_module, stage):
        discriminator = pl_module.discriminator
        if not (getattr(pl_module.generator, "conditional", False)
                and getattr(discriminator, "conditional", False)):
            raise ValueError("tricks=[self_cond] conditions G and D on cluster ids: set "
                             "model.conditional=true (conf/tricks/self_cond.yaml sets it; an "
                             "override turned it off)")
        if not callable(getattr(discriminator, "trunk", None)):
            name = f"{type(discriminator).__module__}.{type(discriminator).__name__}"
            raise ValueError(f"tricks=[self_cond] (the default recipe's) clusters D's features, "
                             f"but {name} has no trunk() (a method returning the module from "
                             f"images to features; gan/networks/dcgan.py has one): add it, or "
                             f"train without the trick: recipe=unconditional")
        self.module = pl_module

    state_name = "self_cond"

    def build_state(self, pl_module) -> ClusterState:
        encoder = self._frozen(pl_module.discriminator)
        probe = torch.zeros(1, *pl_module.hparams.img_shape,
                            device=next(encoder.parameters()).device)
        return ClusterState(encoder, self.clusters, encoder(probe).flatten(1).shape[1])

    def label_space(self, pl_module) -> LabelSpace:
        prior = self.state.prior if self.state is not None else torch.full(
            (self.clusters,), 1.0 / self.clusters)
        return LabelSpace("clusters", self.clusters, tuple(prior.double().cpu().tolist()))

    @staticmethod
    def _frozen(discriminator: nn.Module) -> nn.Module:
        return copy.deepcopy(discriminator.trunk()).requires_grad_(False).eval()

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen trunk's features, unit length: clusters of shape, not of ink."""
        encoder = self.state.encoder.eval()
        # in the nets' dtype (bf16 under trainer.precision=bf16-true); clustered in float32
        dtype = next(encoder.parameters()).dtype
        chunks = [encoder(x.to(dtype)).flatten(1).float() for x in images.split(1000)]
        return nn.functional.normalize(torch.cat(chunks), dim=1)

    def on_train_start(self, trainer, pl_module):
        # A fixed, seeded subset of the training images; their labels are never touched.
        images = trainer.datamodule.train_images
        g = torch.Generator().manual_seed(self.seed)
        pick = torch.randperm(len(images), generator=g)[: self.n_images]
        self.images = images[pick.to(images.device)].to(pl_module.device)
        self.trainer = trainer
        self.heldout = self._heldout(trainer.datamodule)
        if not self.state.centres.any():  # fresh run: cluster the random D's features
            self.recluster()
        else:  # resumed: the centres and encoder came with the checkpoint
            self.assigned = nearest(self._subset_features(), self.state.centres)

    def _heldout(self, datamodule) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The first `purity_images` held-out real images with their labels, for the purity
        diagnostic only; None where the data has no labelled held-out split."""
        split = getattr(datamodule, "test_split", None)
        if not self.purity_images or not callable(split):
            return None
        images, labels = split()
        if labels is None or labels.ndim != 1 or len(labels) == 0:
            return None
        n = min(self.purity_images, len(labels))
        return images[:n], labels[:n]

    def _subset_features(self) -> torch.Tensor:
        return self.features(to_unit_range(self.images))

    def _real_batchnorm(self, encoder: nn.Module) -> None:
        """Re-estimate the trunk's BatchNorm statistics on the real subset alone, so the
        clustered features are real images' as D normalises them without the fakes' share of
        the running statistics."""
        dtype = next(encoder.parameters()).dtype
        standing_batchnorm(encoder, ((x.to(dtype),) for x in to_unit_range(self.images).split(500)))
        encoder.eval()

    @torch.no_grad()
    def recluster(self) -> None:
        module = self.module
        state = self.state
        state.encoder = self._frozen(module.discriminator).to(module.device)
        if self.encoder_bn == "real":
            self._real_batchnorm(state.encoder)
        features = self._subset_features()
        g = torch.Generator().manual_seed(self.seed + module.d_step)
        if self.assigned is None:
            start = kmeans_plus_plus(features.cpu(), self.clusters, g).to(features.device)
        else:  # the old clusters' means under the new features (Liu et al., section 3.2)
            start = self._means(features, self.assigned, state.centres)
        centres = best_of_restarts(features, start, self.restarts, g, self.iters,
                                   self.reseed_empty)
        assigned = nearest(features, centres)
        if self.assigned is not None:
            perm = match_clusters(self.assigned, assigned, self.clusters).to(assigned.device)
            assigned = perm[assigned]
            centres = centres[torch.argsort(perm)]
        self.assigned = assigned
        state.centres = centres
        counts = torch.bincount(assigned, minlength=self.clusters).float()
        state.prior = counts / counts.sum()
        self._log_purity(module)

    def _log_purity(self, module) -> None:
        if self.heldout is None:
            return
        images, labels = self.heldout
        assigned = nearest(self.features(to_unit_range(images.to(module.device))),
                           self.state.centres)
        value = purity(assigned, labels, self.clusters)
        log.info("self_cond: clustered at D step %d, purity %.3f on %d held-out images "
                 "(diagnostic)", module.d_step, value, len(labels))
        for logger in getattr(self.trainer, "loggers", []):
            logger.log_metrics({"diag/cluster_purity": value}, step=int(module.g_step))

    def _means(self, features, assigned, previous) -> torch.Tensor:
        sums = torch.zeros(self.clusters, features.shape[1], device=features.device)
        sums.index_add_(0, assigned, features)
        counts = torch.bincount(assigned, minlength=self.clusters).unsqueeze(1)
        return torch.where(counts > 0, sums / counts.clamp(min=1), previous.to(features.device))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (pl_module.d_step % self.recluster_every == 0
                or pl_module.d_step == self.first_recluster):
            self.recluster()

    @torch.no_grad()
    def real_labels(self, real, labels):
        # the batch's dataset labels are dropped: each real image is labelled by its cluster
        return nearest(self.features(real), self.state.centres)

    def generator_labels(self, labels):
        # cluster ids at their data frequency, from the global RNG (seeded, restored on resume)
        return torch.multinomial(self.state.prior, labels.shape[0], replacement=True)
