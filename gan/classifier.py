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

import hydra
import torch

from gan.io.config import CONF_DIR
from gan.metrics.classifier import MIN_TEST_ACCURACY, save_classifier, train, weights_path

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="classifier")
def main(cfg) -> float:
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
        raise SystemExit(f"test accuracy {acc:.4f} is below {bar}; weights not written")
    digest = save_classifier(model, cfg.dataset, cfg.widths)
    size = weights_path(cfg.dataset).stat().st_size
    print(f"wrote {weights_path(cfg.dataset)} ({size / 1024:.0f} KiB) sha256 {digest}")
    return acc


if __name__ == "__main__":
    main()
