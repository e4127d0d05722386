"""Does G copy its training set? Nearest-training-neighbour distances in a feature space (the
memorisation term of MiFID, Bai et al. 2021, read as a ratio).

For each sample, the distance to its nearest training feature; for each held-out real image
(never trained on), the same. Fresh real images show how close an image of the data's
distribution sits to the training set by chance; `memorisation_ratio` = median sample NN
distance / median held-out NN distance. Below 1: samples sit closer to training images than
fresh real images do, i.e. G reproduces training images; near 1: no sign of copying; above 1:
samples are off the data (say, blurry), which FID sees, not this.

Pure functions on features (e.g. the shipped classifier's, gan/metrics/classifier.py); the
metrics callback wires them in. Distances are computed in row chunks, so 10,000 x 60,000 never
holds the full matrix.
"""

from __future__ import annotations

import torch

CHUNK_ELEMENTS = 1 << 24  # distances held at once: 16.8 M floats, 64 MiB


def nearest(queries: torch.Tensor, reference: torch.Tensor,
            chunk_elements: int = CHUNK_ELEMENTS) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance, index) of each query's nearest reference row, Euclidean, in row chunks."""
    if queries.dim() != 2 or reference.dim() != 2 or queries.shape[1] != reference.shape[1]:
        raise ValueError(f"nearest needs (N, d) and (M, d) features, got "
                         f"{tuple(queries.shape)} and {tuple(reference.shape)}")
    if len(reference) == 0:
        raise ValueError("nearest needs at least one reference feature")
    queries, reference = queries.float(), reference.float()
    ref_sq = reference.pow(2).sum(1)  # (M,)
    rows = max(1, chunk_elements // len(reference))
    dists, idxs = [], []
    for q in queries.split(rows):
        # |q - r|^2 = |q|^2 + |r|^2 - 2 q.r; the argmin needs only |r|^2 - 2 q.r (one matmul;
        # ~1.5x faster than torch.cdist, which also takes the root of every entry)
        part, i = torch.addmm(ref_sq[None], q, reference.T, alpha=-2).min(dim=1)  # (rows,)
        dists.append((part + q.pow(2).sum(1)).clamp_min(0).sqrt())
        idxs.append(i)
    return torch.cat(dists), torch.cat(idxs)


def memorisation_metrics(samples: torch.Tensor, train: torch.Tensor,
                         heldout: torch.Tensor) -> dict[str, float | int]:
    """Median and mean nearest-training-feature distance of the samples and of held-out real
    images, and their ratio (median over median): < 1 means copying."""
    sample_d, _ = nearest(samples, train)
    heldout_d, _ = nearest(heldout, train)
    ratio = float(sample_d.median() / heldout_d.median().clamp_min(1e-12))
    return {"sample_nn_median": float(sample_d.median()), "sample_nn_mean": float(sample_d.mean()),
            "heldout_nn_median": float(heldout_d.median()),
            "heldout_nn_mean": float(heldout_d.mean()),
            "memorisation_ratio": ratio, "n": len(samples), "n_heldout": len(heldout),
            "n_train": len(train)}


def nearest_training_indices(samples: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """For each sample's features, the index of its nearest training image (for a row of
    samples beside their nearest training images)."""
    return nearest(samples, train)[1]
