"""Train a metric classifier (the weights gan.metrics ships, pinned by sha256 in
gan/assets/checksums.json): `python -m gan.classifier data=mnist|fashion_mnist`. The network,
its training and the checksum registry: gan/metrics/classifier.py."""

from __future__ import annotations

import logging
import time

import torch

from gan.cli.runner import entry_point
from gan.io.keys import integer, number
from gan.io.usage import UsageError
from gan.metrics.classifier import (
    CLASSIFIED,
    MIN_TEST_ACCURACY,
    save_classifier,
    train,
    weights_path,
)

log = logging.getLogger(__name__)


def check(cfg) -> None:
    if cfg.dataset not in CLASSIFIED:
        raise UsageError(f"data={cfg.dataset}: a metric classifier exists for "
                         f"{', '.join(CLASSIFIED)} only")
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
