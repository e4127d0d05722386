"""`python -m gan.evaluate samples=<file.pt> n=10000 data=mnist`: score generated samples.

Prints the metrics of gan/metrics/scores.py and writes them, with the sample count, reference split and
extractor checksum they are relative to, as JSON to `out` (default: the Hydra run dir).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from gan.core.drawing import cycled_labels, is_conditional
from gan.core.posthoc import Plain
from gan.data.registry import DATASETS
from gan.io.config import CONF_DIR, build
from gan.metrics.classifier import extractor_id
from gan.metrics.scores import DESCRIPTIONS, compute_metrics
from gan.sampling.sampler import Sampler

FID_INCEPTION = "Inception-v3 FID (299x299, 2048-d pool), only to compare with the literature"

log = logging.getLogger(__name__)


def load_samples(path: str | Path) -> torch.Tensor:
    """A tensor file written by `torch.save(tensor, path)`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"samples file {path} does not exist")
    fake = torch.load(path, map_location="cpu", weights_only=True)
    if not torch.is_tensor(fake):
        raise ValueError(
            f"{path} holds a {type(fake).__name__}, expected one tensor "
            "(N, 1, 28, 28) float in [-1, 1] saved with torch.save(tensor, path)"
        )
    return fake


def fake_samples(cfg: DictConfig, posthoc: Plain) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The images to score (a samples file, or `n` drawn by `posthoc` from a checkpoint's
    generator), and the labels a conditional generator was asked for (None otherwise)."""
    if (cfg.samples is None) == (cfg.ckpt_path is None):
        raise ValueError("give exactly one of samples=<file.pt> or ckpt_path=<file.ckpt>")
    if cfg.samples is not None:
        return load_samples(cfg.samples), None
    sampler = Sampler(cfg.ckpt_path)
    # pseudo-labels (a label prior) are not classes: no label metrics for them
    conditional = is_conditional(sampler.generator) and sampler.label_prior is None
    asked = cycled_labels(cfg.n, sampler.num_classes) if conditional else None
    return sampler(cfg.n, seed=cfg.seed, posthoc=posthoc), asked


def evaluate(cfg: DictConfig) -> dict:
    posthoc = build(cfg.sampler)
    fake, asked = fake_samples(cfg, posthoc)
    values = compute_metrics(
        fake, cfg.dataset, n=cfg.n, root=cfg.data.root, split=cfg.split, seed=cfg.seed,
        labels=asked,
    )
    if cfg.get("inception_weights"):
        values["fid_inception"] = fid_inception(fake, cfg)
    return {
        "dataset": cfg.dataset,
        "split": cfg.split,
        "n": cfg.n,
        "samples": cfg.samples,
        "ckpt_path": cfg.ckpt_path,
        # which post-hoc sampler drew the images (a samples file: whatever made it)
        "sampler": posthoc.describe() if cfg.ckpt_path is not None else None,
        "extractor_sha256": extractor_id(cfg.dataset),
        "metrics": values,
    }


def fid_inception(fake: torch.Tensor, cfg: DictConfig) -> float:
    """Inception FID of the first n samples vs the same seeded n real images as compute_metrics.
    On all n (a subset would not be comparable with published 10k/50k values): warns of the time."""
    from gan.metrics import inception  # torch-fidelity is optional: imported only when asked for

    inception.check_weights(cfg.inception_weights)  # before any slow work
    dm = DATASETS[cfg.dataset](root=cfg.data.root, download=False)
    real = dm.load(train=True)[0] if cfg.split == "train" else dm.test_split()[0]
    pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.n]
    minutes = 2 * cfg.n * inception.SECONDS_PER_1000 / 1000 / 60 / max(torch.get_num_threads(), 1)
    log.warning(
        "fid_inception on %d fake + %d real images: roughly %.0f min on %d CPU thread(s)",
        cfg.n,
        cfg.n,
        minutes,
        torch.get_num_threads(),
    )
    return inception.inception_fid(fake[: cfg.n], real[pick], cfg.inception_weights)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> float:
    try:
        report = evaluate(cfg)
    except (ValueError, FileNotFoundError, ImportError) as err:
        raise SystemExit(f"gan.evaluate: {err}") from err  # a usage error, not a crash
    print(f"{cfg.dataset}: n={cfg.n} samples vs {cfg.n} real ({cfg.split} split)")
    for key, value in report["metrics"].items():
        print(f"  {key:<16} {value:12.4f}   {DESCRIPTIONS.get(key, FID_INCEPTION)}")
    write_json(report, cfg.out)
    print(f"wrote {cfg.out}")
    return report["metrics"]["fid"]


def write_json(report: dict, out: str | Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
