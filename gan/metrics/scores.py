"""Offline sample-quality metrics on the features of a per-dataset classifier
(gan/metrics/classifier.py).

`compute_metrics(fake, dataset, n)` compares n generated images with n held-out real images (the
test split) and returns plain floats, logged during training as `val/<key>`:

    fid, kid, kid_std   Frechet / kernel distance between feature distributions (torchmetrics)
    is                  Inception Score computed from the classifier's softmax (max = 10)
    precision, recall   improved precision & recall, k-NN manifolds (Kynkaanniemi et al. 2019)
    density, coverage   their outlier-robust variants (Naeem et al. 2020)
    classes_covered     classes receiving at least a quarter of their fair share of samples
    class_kl            KL(predicted class histogram || uniform); ln 10 = one class only
    min_class_share     share of the samples given to the rarest class (0.1 = balanced)

The classifier runs once per image set; FID, KID, the k-NN metrics, IS and the histogram all
reuse those features. The real side is cached on disk, keyed by (dataset, split, extractor
sha256).
Always report values with their sample count and reference split: FID in particular is biased
upwards at small n.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from gan.data import images as gan_data
from gan.data.registry import DATASETS
from gan.io.files import atomic_write
from gan.metrics import extractors
from gan.metrics.memorisation import memorisation_metrics
from gan.metrics.modes import mode_metrics

log = logging.getLogger(__name__)


DESCRIPTIONS = {  # one line each, for logs, `gan.evaluate` and docs/compare.md
    "fid": "Frechet distance of Gaussian fits to real and fake classifier features (lower: better)",
    "kid": "cubic-kernel MMD^2 of the same features, unbiased at small n (lower: better)",
    "kid_std": "standard deviation of kid over its random 1000-sample subsets",
    "is": "IS of the classifier softmax, exp E KL(p(y|x) || p(y)): 1..10 (higher: better)",
    "precision": "fraction of fakes inside the real k-NN manifold (k=3): fidelity (higher: better)",
    "recall": "fraction of reals inside the fake k-NN manifold (k=3): diversity (higher: better)",
    "density": "mean number of real k-NN balls holding a fake, / k; ~1 for real data (fidelity)",
    "coverage": "fraction of real k-NN balls holding at least one fake (diversity, 0..1)",
    "classes_covered": "classes predicted for >= n/40 fakes (a quarter of a fair share), 0..10",
    "class_kl": "KL(predicted class histogram || uniform): 0 balanced, ln 10 = 2.30 one class",
    "min_class_share": "fraction of fakes predicted as the rarest class: 0.1 balanced, 0 missing",
    "pixel_mean": "mean pixel value of the samples in [-1, 1] (no extractor needed)",
    "pixel_std": "pixel standard deviation of the samples (no extractor needed)",
    "pixel_mean_gap": "|per-channel pixel mean of samples - of real images|, averaged",
    "pixel_std_ratio": "per-channel pixel std of samples / of real images, averaged (1: equal)",
    "modes": "Stacked MNIST: modes (of 1,000 digit triples) holding at least one sample",
    "mode_kl": "Stacked MNIST: KL(mode histogram || uniform over 1,000), nats (papers: 26k)",
    "mode_kl_log10": "the same KL in log10 units (Liu et al. 2020)",
    "modes_real": "the floor: modes the reference split's own real triples hold at the same n",
    "mode_kl_real": "the floor: the real triples' own mode KL at the same n (a finite sample of "
                    "a uniform-ish law is not uniform: ~0.03 nats at 26,000)",
    "memorisation_ratio": "median nearest-training-image distance of samples / of held-out reals "
                          "(< 1: samples sit closer to training images than fresh ones: copying)",
    "sample_nn_median": "median feature distance from a sample to its nearest training image",
    "heldout_nn_median": "median feature distance from a held-out real image to the nearest "
                         "training image (the by-chance reference)",
    "label_accuracy": "conditional G only: fraction the classifier assigns the requested label",
    "label_purity": "conditional G only: fraction in their label's most common class (InfoGAN "
                    "codes: how digit-pure each code is, whichever digit it drew)",
}


PR_K = 3  # neighbours that set each manifold ball's radius, as in the paper


KID_SUBSET_SIZE, KID_SUBSETS = 1000, 100  # torchmetrics' and StyleGAN's defaults; ~1 s on 10k


COVERED_SHARE = 0.25  # a class is covered if it gets >= 25 % of n / num_classes samples


_REAL_MEMO: dict[str, torch.Tensor] = {}  # cache file -> features, for per-epoch callers


_REF_MEMO: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # -> (features, k-NN radii)


class _Precomputed(nn.Module):
    """Identity 'extractor' so torchmetrics FID/KID consume features we already computed once
    (the classifier itself is also a valid extractor: it has `num_features`)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


@torch.no_grad()
def extract(model: nn.Module, images: torch.Tensor, batch: int = 500):
    """(features, logits) of (N, C, H, W) images, float in [-1, 1] or uint8: a tensor, or
    anything sliced like one (Stacked MNIST's training split gathers its pixels per slice)."""
    feats, logits = [], []
    # channels_last input: on CPU the 1-channel first conv runs ~3x faster in NHWC (oneDNN),
    # and ~500-image batches beat one huge batch (activations stay in cache).
    for start in range(0, len(images), batch):
        x = images[start:start + batch]
        if x.dtype == torch.uint8:
            x = gan_data.to_unit_range(x)
        f, y = model.features_and_logits(x.contiguous(memory_format=torch.channels_last))
        feats.append(f)
        logits.append(y)
    return torch.cat(feats), torch.cat(logits)


def cache_dir() -> Path:
    """`$GAN_CACHE_DIR`, else `~/.cache/gan_lab` (never the data root: it may be read-only)."""
    return Path(os.environ.get("GAN_CACHE_DIR", Path.home() / ".cache" / "gan_lab")).expanduser()


def real_features(
    dataset: str,
    root: str | None = None,
    split: str = "test",
    cache: str | Path | None = None,
    use_cache: bool = True,
    extractor: str | None = None,
) -> torch.Tensor:
    """Classifier features of a whole real split (CPU float32), cached on disk and in memory.
    `extractor`: whose features (gan/metrics/extractors.py); the dataset's own by default."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    extractor = extractor or dataset
    digest = extractors.digest(extractor)
    # data whose reference is drawn (Stacked MNIST's triples) names which one it is
    tag = getattr(DATASETS.get(dataset), "reference_tag", None)
    tag = f"{tag(split == 'train')}_" if tag else ""
    path = Path(cache or cache_dir()) / f"real_{dataset}_{split}_{tag}{extractor}_{digest[:16]}.pt"
    if use_cache and str(path) in _REAL_MEMO:
        return _REAL_MEMO[str(path)]
    feats = None
    if use_cache and path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob["extractor"] == digest:  # the file name holds only a prefix
                feats = blob["features"]
        except Exception as err:  # a torn or foreign file: recompute and overwrite
            log.warning("Ignoring unreadable metrics cache %s (%s)", path, err)
    if feats is None:
        dm = DATASETS[dataset](root=root, download=False)
        images = dm.load(train=True)[0] if split == "train" else dm.test_split()[0]
        feats = extract(extractors.load(extractor), images)[0]
        if use_cache:
            _atomic_save({"features": feats, "extractor": digest, "split": split}, path)
    if use_cache:
        _REAL_MEMO[str(path)] = feats
    return feats


def clear_memo() -> None:
    """Forget in-process real features (the on-disk cache stays): what a new process sees."""
    _REAL_MEMO.clear()
    _REF_MEMO.clear()


def _atomic_save(obj, path: Path) -> None:
    """Atomic, so a concurrent reader never sees half a file; an unwritable cache dir only
    costs the recomputation next time."""
    try:
        atomic_write(path, lambda tmp: torch.save(obj, tmp))
    except OSError as err:
        log.warning("Could not write metrics cache %s (%s); set GAN_CACHE_DIR", path, err)


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    # sync_on_compute=False: the samples are scored in one process (rank 0 under DDP, which
    # broadcasts the numbers); torchmetrics' cross-rank gather would wait for the other ranks.
    fid = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]),
                                   sync_on_compute=False).to(real.device)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    return max(fid.compute().item(), 0.0)  # eigvals round-off can dip just below 0


def kernel_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    subset_size: int = KID_SUBSET_SIZE,
    subsets: int = KID_SUBSETS,
    seed: int = 0,
) -> tuple[float, float]:
    subset_size = min(subset_size, len(real), len(fake))
    with warnings.catch_warnings():  # "KID will save all extracted features": we know
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(
            feature=_Precomputed(real.shape[1]), subsets=subsets, subset_size=subset_size,
            sync_on_compute=False,  # one process scores (see frechet_distance)
        ).to(real.device)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    # torchmetrics draws its subsets from the global RNG: fork it so the value is reproducible
    # and the caller's random stream (e.g. a training run's) is left untouched.
    # Seed the CPU generator only (torchmetrics' randperm runs there): torch.manual_seed would
    # also reseed every CUDA device, which fork_rng(devices=[]) does not restore, and a
    # training run on a GPU would then redraw the same noise after every evaluation.
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        mean, std = kid.compute()
    return mean.item(), std.item()


def inception_score(logits: torch.Tensor) -> float:
    """exp E_x KL(p(y|x) || p(y)) over all samples in one split (10 classes: 1 <= IS <= 10)."""
    log_p_yx = logits.double().log_softmax(1)  # (N, K)
    log_p_y = log_p_yx.exp().mean(0).log()  # (K,)
    return math.exp((log_p_yx.exp() * (log_p_yx - log_p_y)).sum(1).mean().item())


def _sq_dists(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    # ||a||^2 + ||b||^2 - 2 a.b as one addmm: 2-3x faster than cdist (and its sqrt) on CPU
    return torch.addmm(b_sq, a, b.T, alpha=-2).add_(a.square().sum(1, keepdim=True))


def knn_radii_sq(x: torch.Tensor, k: int = PR_K, chunk: int = 1000) -> torch.Tensor:
    """Squared distance from each row of x to its k-th nearest other row."""
    x_sq = x.square().sum(1)
    # k + 1 smallest: the row itself sits at distance 0
    radii = [
        _sq_dists(c, x, x_sq).topk(k + 1, dim=1, largest=False).values[:, k] for c in x.split(chunk)
    ]
    return torch.cat(radii).clamp_(min=0)


def manifold_metrics(
    real: torch.Tensor,
    fake: torch.Tensor,
    k: int = PR_K,
    real_radii_sq: torch.Tensor | None = None,
    chunk: int = 1000,
) -> dict[str, float]:
    """k-NN manifold metrics on features, chunked so 10k x 10k never sits in memory at once.

    precision/recall: Kynkaanniemi et al. 2019 (arXiv:1904.06991), the fraction of one set
    inside the union of the other's k-NN balls. density/coverage: Naeem et al. 2020
    (arXiv:2002.09797), the outlier-robust variants built from the real balls only: precision
    counts a fake inside *one* over-sized ball around a real outlier as faithful, which is how
    uniform noise scores precision ~1 on Fashion-MNIST features; density (the mean number of
    real balls holding a fake, / k) and coverage (the fraction of real balls holding any fake)
    do not fall for that.
    """
    if real_radii_sq is None:
        real_radii_sq = knn_radii_sq(real, k, chunk)
    fake_radii_sq = knn_radii_sq(fake, k, chunk)
    real_sq, fake_sq = real.square().sum(1), fake.square().sum(1)
    inside_real = []  # per fake: how many real balls hold it
    nearest_fake = torch.full_like(real_radii_sq, float("inf"))  # per real: to the closest fake
    for c in fake.split(chunk):
        d = _sq_dists(c, real, real_sq)  # (chunk, N_real)
        inside_real.append((d <= real_radii_sq).sum(1))
        nearest_fake = torch.minimum(nearest_fake, d.amin(0))
    in_fake_balls = [
        (_sq_dists(c, fake, fake_sq) <= fake_radii_sq).any(1) for c in real.split(chunk)
    ]
    inside_real = torch.cat(inside_real).float()
    return {
        "precision": (inside_real > 0).float().mean().item(),
        "recall": torch.cat(in_fake_balls).float().mean().item(),
        "density": inside_real.mean().item() / k,
        "coverage": (nearest_fake <= real_radii_sq).float().mean().item(),
    }


def class_shares(logits: torch.Tensor) -> torch.Tensor:
    """Fraction of the samples predicted as each class (argmax), shape (K,)."""
    n, k = logits.shape
    return torch.bincount(logits.argmax(1), minlength=k).double() / n


def class_histogram_stats(logits: torch.Tensor) -> tuple[float, float]:
    """(classes_covered, KL(histogram || uniform)) of the argmax predictions.

    'Covered' needs a quarter of the fair share n / K, not one sample: a 99 %-accurate
    classifier scatters ~1 % of any set over wrong classes, and those stray votes must not count
    a collapsed generator as diverse.
    """
    k = logits.shape[1]
    p = class_shares(logits)
    covered = int((p >= COVERED_SHARE / k).sum())
    nz = p > 0
    kl = (p[nz] * (p[nz] * k).log()).sum().item()  # 0 log 0 = 0
    return float(covered), kl


def real_reference(
    dataset: str,
    n: int,
    root: str | None = None,
    split: str = "test",
    cache: str | Path | None = None,
    use_cache: bool = True,
    seed: int = 0,
    extractor: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """n real features (a seeded subset of the split) and their k-NN radii, memoised: a
    training run scores every epoch against the same reference."""
    extractor = extractor or dataset
    key = (dataset, extractor, extractors.digest(extractor), n, root, split, str(cache), seed)
    if use_cache and key in _REF_MEMO:
        return _REF_MEMO[key]
    f_all = real_features(dataset, root, split, cache, use_cache, extractor)
    if n > len(f_all):
        raise ValueError(f"n={n} exceeds the {len(f_all)} images of the {split} split")
    pick = torch.randperm(len(f_all), generator=torch.Generator().manual_seed(seed))[:n]
    ref = (f_all[pick], knn_radii_sq(f_all[pick]))
    if use_cache:
        _REF_MEMO[key] = ref
    return ref


def real_modes(dataset: str, n: int, root: str | None = None, split: str = "test",
               seed: int = 0) -> dict[str, float | int]:
    """`modes_real`, `mode_kl_real`: the mode metrics of the same seeded n real images the
    reference features are (their true modes): the floor a generator's numbers stand beside."""
    key = ("modes", dataset, n, root, split, seed)
    if key not in _REF_MEMO:
        dm = DATASETS[dataset](root=root, download=False)
        labels = dm.load(train=True)[1] if split == "train" else dm.test_split()[1]
        if n > len(labels):
            raise ValueError(f"n={n} exceeds the {len(labels)} images of the {split} split")
        pick = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:n]
        found = mode_metrics(labels[pick])
        _REF_MEMO[key] = {"modes_real": found["modes"], "mode_kl_real": found["mode_kl"]}
    return _REF_MEMO[key]


def _check_fake(fake: torch.Tensor, n: int, img_shape=(1, 28, 28)) -> None:
    if not torch.is_tensor(fake) or fake.dim() != 4 or tuple(fake.shape[1:]) != img_shape:
        got = tuple(fake.shape) if torch.is_tensor(fake) else type(fake).__name__
        raise ValueError(
            f"fake samples must be a (N, {', '.join(map(str, img_shape))}) tensor, got {got}"
        )
    if not fake.is_floating_point():
        raise ValueError(f"fake samples must be float in [-1, 1], got dtype {fake.dtype}")
    if len(fake) < n:
        raise ValueError(
            f"need at least n={n} fake samples, got {len(fake)}; lower n or generate more"
        )
    bad = int((~torch.isfinite(fake[:n])).sum())
    if bad:
        raise ValueError(
            f"fake samples hold {bad} NaN/inf value(s) in the first n={n}: the generator that "
            f"made them diverged; score a finite checkpoint (e.g. an earlier epochNNN.ckpt)"
        )
    lo, hi = fake.min().item(), fake.max().item()
    if lo < -1.01 or hi > 1.01:
        raise ValueError(
            f"fake samples must lie in [-1, 1] (the Tanh range), got [{lo:.3g}, "
            f"{hi:.3g}]; map [0, 1] images with x * 2 - 1"
        )


def label_agreement(predicted: torch.Tensor, asked: torch.Tensor) -> dict[str, float]:
    """`label_accuracy`: predicted == asked. `label_purity`: each asked label's samples counted
    in their most common predicted class, so a label that always draws one digit scores 1
    whichever digit that is (an InfoGAN code names a cluster, not a digit)."""
    joint = torch.zeros(int(asked.max()) + 1, int(predicted.max()) + 1, dtype=torch.float64)
    joint.index_put_((asked.long(), predicted.long()), torch.ones(len(asked), dtype=torch.float64),
                     accumulate=True)
    return {"label_accuracy": (predicted == asked).double().mean().item(),
            "label_purity": (joint.max(1).values.sum() / len(asked)).item()}


def compute_metrics(
    fake: torch.Tensor,
    dataset: str,
    n: int = 10_000,
    root: str | None = None,
    split: str = "test",
    cache: str | Path | None = None,
    use_cache: bool = True,
    seed: int = 0,
    labels: torch.Tensor | None = None,
    extractor: str | None = None,
    memorisation: bool = False,
) -> dict[str, float]:
    """All metrics for the first n of `fake` ((N, 1, 28, 28) float in [-1, 1]) against n real
    images of `split` (a fixed seeded subset when n < the split's size). `labels`: the classes
    a conditional generator was asked for; adds `label_accuracy`. `extractor`: whose features
    (gan/metrics/extractors.py); the dataset's own classifier by default."""
    extractor = extractor or dataset
    _check_fake(fake, n, extractors.EXTRACTORS[extractor].shape
                if extractor in extractors.EXTRACTORS else (1, 28, 28))
    model = extractors.load(extractor).to(fake.device)
    f_fake, logits = extract(model, fake[:n].float())
    f_real, real_radii_sq = real_reference(dataset, n, root, split, cache, use_cache, seed,
                                           extractor)
    f_real, real_radii_sq = f_real.to(fake.device), real_radii_sq.to(fake.device)
    kid, kid_std = kernel_distance(f_real, f_fake, seed=seed)
    manifold = manifold_metrics(f_real, f_fake, real_radii_sq=real_radii_sq)
    covered, kl = class_histogram_stats(logits)
    asked = {} if labels is None else label_agreement(logits.argmax(1).cpu(), labels[:n].cpu())
    # Copying: the samples' nearest-training-image distance against held-out reals' (the
    # reference split's n images), in the same features. Final scores only: 10k x 60k distances.
    copying = {}
    if memorisation:
        train = real_features(dataset, root, "train", cache, use_cache, extractor)
        found = memorisation_metrics(f_fake.cpu(), train, f_real.cpu())
        copying = {k: found[k] for k in ("memorisation_ratio", "sample_nn_median",
                                          "heldout_nn_median")}
    # 1,000 modes (Stacked MNIST): the papers' mode count and KL, with n alongside
    modes = {} if not extractors.EXTRACTORS[extractor].modes else {
        **{k: v for k, v in mode_metrics(logits.argmax(1).cpu()).items() if k != "n"},
        **real_modes(dataset, n, root, split, seed)}
    return {
        "fid": frechet_distance(f_real, f_fake),
        "kid": kid,
        "kid_std": kid_std,
        "is": inception_score(logits),
        **manifold,  # precision, recall, density, coverage
        "classes_covered": covered,
        "class_kl": kl,
        "min_class_share": class_shares(logits).min().item(),
        **asked,
        **modes,
        **copying,
    }
