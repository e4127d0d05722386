"""Time gan.metrics.scores.compute_metrics on 10k samples, with the real-side cache cold and warm.

    GAN_DATA_DIR=../shared/data python benchmarks/metrics_speed.py [--dataset mnist] [--n 10000]

Budget (issue #3): all metrics on 10k samples in <= 15 s on two CPU cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from gan.data.images import default_root, to_unit_range
from gan.data.registry import DATASETS
from gan.metrics import scores as metrics
from gan.metrics.classifier import load_classifier


def stage_times(fake: torch.Tensor, dataset: str, n: int, cache: str) -> dict[str, float]:
    """The same work as compute_metrics, one stage at a time (real features already cached)."""
    out, t = {}, time.perf_counter()

    def lap(name):
        nonlocal t
        now = time.perf_counter()
        out[name], t = now - t, now

    model = load_classifier(dataset)
    f_fake, logits = metrics.extract(model, fake[:n])
    lap("extract fake features")
    f_real = metrics.real_features(dataset, cache=cache)[:n]
    lap("real features (memo)")
    metrics.frechet_distance(f_real, f_fake)
    lap("fid")
    metrics.kernel_distance(f_real, f_fake)
    lap("kid")
    metrics.manifold_metrics(f_real, f_fake)
    lap("precision/recall/density/coverage (real radii not cached)")
    metrics.inception_score(logits), metrics.class_histogram_stats(logits)
    lap("is + histogram")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist", choices=sorted(DATASETS))
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--root", default=default_root())
    args = parser.parse_args()

    dm = DATASETS[args.dataset](root=args.root, download=False)
    fake = to_unit_range(dm.load(train=True)[0][: args.n])  # stand-in for generated samples
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, n={args.n}, "
        f"dataset={args.dataset}"
    )
    with tempfile.TemporaryDirectory() as cache:
        for label in (
            "cold (real features computed)",
            "warm (real features on disk)",
            "warm (real features in memory)",
        ):
            if not label.endswith("memory)"):
                metrics.clear_memo()  # what a fresh process sees
            start = time.perf_counter()
            metrics.compute_metrics(fake, args.dataset, n=args.n, root=args.root, cache=cache)
            print(f"all metrics, {label}: {time.perf_counter() - start:.2f} s")
        for stage, seconds in stage_times(fake, args.dataset, args.n, cache).items():
            print(f"  {stage:<58} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
