"""Your image, in the learned style: `python -m gan.project ckpt_path=<file> input=<image|folder>`.

The input is brought into the training data's form (gan/sampling/preprocess.py), projected into the
generator (gan/sampling/projection.py), and written to `out/`: `input.png` (preprocessed),
`reconstruction.png`, `variations.png` (nearby z), for a conditional generator `style_row.png`
(the input's z written as every class), and `projection.json` (class, distance, z). A folder of
images is projected in one batch, each image's files in `out/<image name>/`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from gan.cli.runner import entry_point
from gan.io.files import check_output_dir, write_json
from gan.io.image_model import load_image_model
from gan.io.keys import device, integer, number
from gan.io.usage import UsageError
from gan.sampling.card import config_of
from gan.sampling.preprocess import image_files, open_image, to_training_form
from gan.sampling.projection import project
from gan.sampling.your_image import (
    dataset_name,
    load_features,
    preprocess_steps,
    save_png,
    style_row,
    variations,
)

log = logging.getLogger(__name__)


def check(cfg: DictConfig) -> list[Path]:
    """Every key a run reads, refused in one line before the checkpoint is read: the image
    files it names, and that `out` can be written."""
    if cfg.ckpt_path is None:
        raise UsageError("ckpt_path=<file.ckpt> is required")
    if cfg.input is None:
        raise UsageError("input=<image or folder> is required")
    integer(cfg.label, "label", low=0, optional=True)
    integer(cfg.seed, "seed", low=0)
    integer(cfg.variations, "variations", low=0)
    integer(cfg.zoom, "zoom", low=1)
    device(cfg.device)
    p = cfg.projection
    for key in ("steps", "bank", "restarts", "top_classes", "keep", "batch_size"):
        integer(p[key], f"projection.{key}", low=1)
    integer(p.explore_steps, "projection.explore_steps", low=0)
    number(p.lr, "projection.lr", positive=True)
    files = image_files(cfg.input)
    for file in files:  # a file that is no image fails before the checkpoint is read
        open_image(file)
    check_output_dir(cfg.out, "out")
    return files


def run(cfg: DictConfig) -> str:
    files = check(cfg)
    sampler = load_image_model(cfg.ckpt_path, cfg.device)
    if getattr(sampler, "latent_dim", None) is None or not callable(
            getattr(sampler, "export_module", None)):
        raise UsageError(f"gan.project searches a latent space through export_module(); this "
                         f"{sampler.describe().get('family', 'model')} has none")
    generator, spec = sampler.export_module(), sampler.spec
    conditional, num_classes = spec.labels.conditional, max(spec.labels.k, 1)
    device = torch.device(cfg.device)
    if cfg.label is not None and not conditional:
        raise UsageError("label= needs a conditional checkpoint (model.conditional=true)")
    if cfg.label is not None and not 0 <= cfg.label < num_classes:
        raise UsageError(f"label={cfg.label} is outside 0..{num_classes - 1}")
    mnist_like = cfg.preprocess.mnist_like
    if mnist_like == "auto":
        mnist_like = dataset_name(config_of(sampler)) is not None
    steps = preprocess_steps(cfg)
    targets = torch.stack([to_training_form(f, spec.shape, mnist_like, steps)
                           for f in files]).to(device)  # (N, C, H, W)
    labels = None if cfg.label is None else torch.full((len(files),), cfg.label,
                                                       device=device)
    p = cfg.projection
    start = time.perf_counter()
    result = project(generator, targets, num_classes=num_classes, labels=labels,
                     features=load_features(sampler, p.features),
                     feature_weight=p.feature_weight, steps=p.steps,
                     explore_steps=p.explore_steps, restarts=p.restarts,
                     top_classes=p.top_classes, keep=p.keep, bank=p.bank, lr=p.lr,
                     prior_weight=p.prior_weight, seed=cfg.seed, batch_size=p.batch_size)
    seconds = time.perf_counter() - start
    log.info("projected %d image(s) in %.1f s", len(files), seconds)
    out = Path(cfg.out)
    for i, file in enumerate(files):
        folder = out / file.stem if Path(cfg.input).is_dir() else out
        folder.mkdir(parents=True, exist_ok=True)
        save_png(targets[i:i + 1], folder / "input.png", 1, cfg.zoom)
        save_png(result.images[i:i + 1], folder / "reconstruction.png", 1, cfg.zoom)
        if cfg.variations > 0:
            images = variations(generator, result, i, cfg.variations, cfg.variation_scale,
                                cfg.seed)
            save_png(images, folder / "variations.png", cfg.variations, cfg.zoom)
        if conditional:
            save_png(style_row(generator, result.z[i], num_classes,
                               cfg.style_truncation),
                     folder / "style_row.png", num_classes, cfg.zoom)
        klass = None if result.labels is None else int(result.labels[i])
        write_json(folder / "projection.json", {
            "input": str(file), "ckpt_path": str(cfg.ckpt_path),
            "class": klass, "class_given": cfg.label is not None,
            "distance": float(result.distance[i]),
            "distance_is": "mean squared pixel difference in [-1, 1] + feature_weight * "
                           "(2 - 2 cos) of the metric classifier's features",
            "seconds": seconds / len(files),
            "z": [float(v) for v in result.z[i]],
        })
        log.info("%s: class %s, distance %.4f -> %s", file.name, klass,
                 float(result.distance[i]), folder)
    return str(out)


main = entry_point("project", run, "project", check=check)


if __name__ == "__main__":
    main()
