"""A small digit/clothing CNN whose penultimate features drive the offline metrics.

Inception-v3 features are ill-posed on 28x28 grey digits (pytorch-fid #12) and its weights
download at run time, so each dataset gets its own classifier trained on its training split.
The weights ship in `gan/assets/` (float16, ~0.2 MB) and are pinned by sha256 in
`gan/assets/checksums.json`: a metric value is only comparable with another computed by the same
extractor, so loading refuses a file whose hash differs from the registry.

Train (seeded, ~2 min per dataset on 2 CPU cores):

    python -m gan.classifier data=mnist
    python -m gan.classifier data=fashion_mnist
"""

from __future__ import annotations

import logging
import time

import torch

from gan.data.registry import DATASETS
from gan.io.errors import UsageError, entry_point
from gan.io.keys import integer, number
from gan.metrics.classifier import MIN_TEST_ACCURACY, save_classifier, train, weights_path

log = logging.getLogger(__name__)


def check(cfg) -> None:
    if cfg.dataset not in DATASETS:
        raise UsageError(f"data={cfg.dataset}: a metric classifier exists for "
                         f"{', '.join(DATASETS)} only")
    for key in ("epochs", "batch_size"):
        integer(cfg[key], key, low=1)
    integer(cfg.seed, "seed", low=0)
    integer(cfg.threads, "threads", low=1, optional=True)
    number(cfg.lr, "lr", positive=True)


def fit(cfg) -> float:
    check(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    model, acc = train(
        cfg.dataset,
        root=cfg.data.root,
        download=cfg.data.get("download", False),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        widths=tuple(cfg.widths),
        seed=cfg.seed,
    )
    seconds = time.perf_counter() - start
    bar = MIN_TEST_ACCURACY[cfg.dataset]
    print(f"{cfg.dataset}: test accuracy {acc:.4f} (bar {bar}) in {seconds:.0f} s")
    if acc < bar:
        raise RuntimeError(f"test accuracy {acc:.4f} is below {bar}; weights not written")
    digest = save_classifier(model, cfg.dataset, cfg.widths)
    size = weights_path(cfg.dataset).stat().st_size
    print(f"wrote {weights_path(cfg.dataset)} ({size / 1024:.0f} KiB) sha256 {digest}")
    return acc


main = entry_point("classifier", fit, "classifier", check=check)


if __name__ == "__main__":
    main()
