"""`python -m gan.evaluate samples=<file.pt> n=10000 data=mnist`: score generated samples.

Prints the metrics of gan/metrics/scores.py and writes them to `out` (default: the Hydra run dir)
as metrics.json, stamped with the protocol they are relative to (gan.io.artefacts: extractor
checksum, n, reference split, sampler, seed): the same schema as training's metrics.json.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from gan.cli.runner import entry_point
from gan.data.registry import DATASETS, dataset_name, primary_of
from gan.io.artefacts import protocol, write_metrics
from gan.io.checkpoint import checkpoint_file
from gan.io.config import build
from gan.io.files import check_output
from gan.io.image_model import load_image_model
from gan.io.keys import integer
from gan.io.spec import ImageSpec
from gan.io.usage import UsageError
from gan.metrics import extractors
from gan.metrics.scores import DESCRIPTIONS, compute_metrics
from gan.sampling.posthoc import Plain

FID_INCEPTION = "Inception-v3 FID (299x299, 2048-d pool), only to compare with the literature"

log = logging.getLogger(__name__)


def load_samples(path: str | Path) -> torch.Tensor:
    """A tensor file written by `torch.save(tensor, path)`."""
    path = checkpoint_file(path, "samples", what="samples")
    try:
        fake = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (any unreadable file is the same bad input)
        raise UsageError(f"samples={path} is not a readable torch file ({type(err).__name__}: "
                         f"{str(err).strip().splitlines()[0][:120] if str(err).strip() else ''})"
                         ) from None
    if not torch.is_tensor(fake) or fake.ndim != 4 or not fake.is_floating_point():
        what = (f"a {tuple(fake.shape)} {fake.dtype} tensor" if torch.is_tensor(fake)
                else f"a {type(fake).__name__}")
        raise UsageError(
            f"samples={path} holds {what}, expected one tensor "
            "(N, 1, 28, 28) float in [-1, 1] saved with torch.save(tensor, path)"
        )
    return fake


def fake_samples(cfg: DictConfig, posthoc: Plain):
    """The images to score (a samples file, or `n` drawn from a checkpoint's model, by
    `posthoc` where the family has post-hoc samplers), the labels a class-conditional model was
    asked for (None otherwise), what drew them, and the model's spec."""
    if cfg.samples is not None:
        fake = load_samples(cfg.samples)
        return fake, None, "samples file", ImageSpec.of(fake.shape[1:])
    model = load_image_model(cfg.ckpt_path)
    if hasattr(model, "with_sampler"):
        model.with_sampler(posthoc)
    trained_on = dataset_name(getattr(model, "config", None))
    # A run on a named dataset is scored against that one; synthetic data (fake) has no
    # metrics of its own, so its checkpoints are scored against whatever data= says.
    if trained_on in DATASETS and trained_on != cfg.dataset and not cfg.get("allow_other_data"):
        raise UsageError(f"ckpt_path={cfg.ckpt_path} was trained on {trained_on}, not "
                         f"data={cfg.dataset}: use data={trained_on}, or allow_other_data=true "
                         f"to score it against {cfg.dataset} anyway")
    # clusters (pseudo-labels) are not classes: no label metrics for them
    labels = model.spec.labels
    asked = labels.cycled(cfg.n) if labels.kind == "classes" else None
    about = model.describe()
    return (model.draw(cfg.n, asked, seed=cfg.seed), asked,
            about.get("draws_with", about.get("family", "model")), model.spec)


def extractor_for(cfg: DictConfig, spec: ImageSpec) -> str | None:
    """`extractor=auto`: data='s classifier where it reads the model's images, else none (pixel
    statistics only); a name: that one, refused in one line naming both shapes if it cannot."""
    choice = cfg.get("extractor", "auto")
    if choice == "auto":
        fits = extractors.EXTRACTORS[cfg.dataset].shape == spec.shape
        return cfg.dataset if fits else None
    name = extractors.resolve(choice, None, "extractor")
    if name is not None:
        extractors.check_fits(name, spec, "extractor")
    return name


def check(cfg: DictConfig) -> None:
    """Every key a run reads, refused in one line before anything is loaded or scored."""
    if (cfg.samples is None) == (cfg.ckpt_path is None):
        raise UsageError("give exactly one of samples=<file.pt> or ckpt_path=<file.ckpt>")
    if cfg.dataset not in DATASETS:
        raise UsageError(f"data={cfg.dataset}: the metrics have classifiers for "
                         f"{', '.join(DATASETS)} only")
    integer(cfg.n, "n", low=2)
    integer(cfg.seed, "seed", low=0)
    if cfg.split not in ("test", "train"):
        raise UsageError(f"split={cfg.split}: use split=test or split=train")
    check_output(cfg.out, "out", (".json",))


def evaluate(cfg: DictConfig) -> dict:
    check(cfg)
    posthoc = build(cfg.sampler)
    fake, asked, sampler, spec = fake_samples(cfg, posthoc)
    try:
        name = extractor_for(cfg, spec)
    except ValueError as err:
        raise UsageError(str(err)) from None
    absent = {}
    if name is None:  # what needs no extractor; the rest named, with why
        if len(fake) < cfg.n:
            raise UsageError(f"need at least n={cfg.n} samples, got {len(fake)}")
        values = extractors.pixel_stats(fake[: cfg.n])
        absent = extractors.absent(cfg.get("extractor", "auto"), spec)
    else:
        values = compute_metrics(
            fake, cfg.dataset, n=cfg.n, root=cfg.data.root, split=cfg.split, seed=cfg.seed,
            labels=asked, extractor=name, memorisation=cfg.split == "test",
        )
    if cfg.get("inception_weights"):
        values["fid_inception"] = fid_inception(fake, cfg)
    stamp = protocol(cfg.dataset, extractors.digest(name) if name else None, cfg.n, cfg.split,
                     sampler, cfg.seed, posthoc.describe() if cfg.ckpt_path is not None else None)
    stamp["extractor_name"], stamp["spec"] = name, spec.to_dict()
    stamp["primary"], stamp["primary_better"] = primary_of(cfg.dataset)  # what ranks it
    return {"protocol": stamp, "samples": cfg.samples, "ckpt_path": cfg.ckpt_path,
            "metrics": values, **({"absent": absent} if absent else {})}


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


def score(cfg: DictConfig) -> float:
    try:
        report = evaluate(cfg)
    except ImportError as err:  # torch-fidelity for inception_weights=: bad input, not a crash
        raise UsageError(str(err)) from None
    name = report["protocol"].get("extractor_name")
    print(f"{cfg.dataset}: n={cfg.n} samples vs {cfg.n} real ({cfg.split} split)" if name
          else f"n={cfg.n} samples: pixel statistics (no extractor)")
    for key, value in report["metrics"].items():
        print(f"  {key:<16} {value:12.4f}   {DESCRIPTIONS.get(key, FID_INCEPTION)}")
    absent = report.get("absent") or {}
    if absent:
        print(f"  absent: {', '.join(absent)} ({next(iter(absent.values()))})")
    write_metrics(cfg.out, report["metrics"], report["protocol"], samples=cfg.samples,
                  ckpt_path=cfg.ckpt_path, **({"absent": absent} if absent else {}))
    print(f"wrote {cfg.out}")
    return report["metrics"].get("fid")


main = entry_point("evaluate", score, "evaluate", check=check)


if __name__ == "__main__":
    main()
