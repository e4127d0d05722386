"""Your image, in the learned style: `python -m gan.project ckpt_path=<file> input=<image|folder>`.

The input is brought into the training data's form (gan/preprocess.py), projected into the
generator (gan/projection.py), and written to `out/`: `input.png` (preprocessed),
`reconstruction.png`, `variations.png` (nearby z), for a conditional generator `style_row.png`
(the input's z written as every class), and `projection.json` (class, distance, z). A folder of
images is projected in one batch, each image's files in `out/<image name>/`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import save_image

from gan.config import CONF_DIR
from gan.files import atomic_write, write_json
from gan.preprocess import Steps, image_files, open_image, to_training_form
from gan.projection import Projection, project
from gan.sampling import Sampler, is_conditional, to_grid

log = logging.getLogger(__name__)


def dataset_name(config: DictConfig) -> str | None:
    """The metric-classifier name (gan.classifier.DATASETS) of the data a run trained on."""
    from gan.classifier import DATASETS

    target = OmegaConf.select(config, "data._target_")
    for name, cls in DATASETS.items():
        if target == f"{cls.__module__}.{cls.__name__}":
            return name
    return None


def load_features(sampler: Sampler, choice: str):
    """The frozen metric classifier for the checkpoint's data (`projection.features=auto`)."""
    if choice in (None, "none"):
        return None
    if choice != "auto":
        raise ValueError(f"projection.features={choice!r}: use auto or none")
    name = dataset_name(sampler.config)
    if name is None or sampler.img_shape != (1, 28, 28):
        log.info("projection.features: no metric classifier for this data; pixel distance only")
        return None
    from gan.classifier import load_classifier

    return load_classifier(name)


def save_png(images: torch.Tensor, path: Path, nrow: int, zoom: int) -> None:
    grid = to_grid(images, nrow)
    if zoom > 1:
        grid = F.interpolate(grid[None], scale_factor=zoom, mode="nearest")[0]
    atomic_write(path, lambda tmp: save_image(grid, tmp, format="png"))


@torch.no_grad()
def variations(generator, projection: Projection, i: int, n: int, scale: float, seed: int):
    """n images from z + scale * noise, the reconstruction's class kept."""
    g = torch.Generator().manual_seed(seed)
    z = projection.z[i] + scale * torch.randn(n, projection.z.shape[1], generator=g)
    y = None if projection.labels is None else projection.labels[i].repeat(n)
    return (generator(z, y) if y is not None else generator(z)).clamp(-1, 1)


@torch.no_grad()
def style_row(generator, z: torch.Tensor, num_classes: int, truncation: float = 1.0
              ) -> torch.Tensor:
    """(K, C, H, W): one z written as each of the K classes.

    `truncation` < 1 scales z towards the origin first (the truncation trick, Brock et al.
    2019): an early or small generator follows its label less the further z lies from the mean,
    and a projected z often does. Measured on 50 projected MNIST test digits: truncation 1 / 0.6
    / 0.4 gave rows classified as asked 85 / 99 / 100 % (10-minute checkpoint) and 64 / 90 / 97 %
    (a one-minute one), while the rows' ink mass kept its correlation with the input's
    (r 0.73 and 0.75-0.78 at every setting): thickness survives, the class gets clearer."""
    y = torch.arange(num_classes)
    return generator((truncation * z).expand(num_classes, -1), y).clamp(-1, 1)


def preprocess_steps(cfg: DictConfig) -> Steps:
    p = cfg.preprocess
    invert = p.invert if p.invert == "auto" else bool(p.invert)
    return Steps(invert=invert, crop=p.crop, fit=p.fit, center=p.center,
                 ink_threshold=p.ink_threshold)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="project")
def main(cfg: DictConfig) -> str:
    if cfg.ckpt_path is None:
        raise ValueError("ckpt_path=<file.ckpt> is required")
    if cfg.input is None:
        raise ValueError("input=<image or folder> is required")
    files = image_files(cfg.input)
    for file in files:  # a file that is no image fails before the checkpoint is read
        open_image(file)
    sampler = Sampler(cfg.ckpt_path, cfg.device)
    generator, conditional = sampler.generator, is_conditional(sampler.generator)
    if cfg.label is not None and not conditional:
        raise ValueError("label= needs a conditional checkpoint (model.conditional=true)")
    if cfg.label is not None and not 0 <= cfg.label < sampler.num_classes:
        raise ValueError(f"label={cfg.label} is outside 0..{sampler.num_classes - 1}")
    mnist_like = cfg.preprocess.mnist_like
    if mnist_like == "auto":
        mnist_like = dataset_name(sampler.config) is not None
    steps = preprocess_steps(cfg)
    targets = torch.stack([to_training_form(f, sampler.img_shape, mnist_like, steps)
                           for f in files]).to(sampler.device)  # (N, C, H, W)
    labels = None if cfg.label is None else torch.full((len(files),), cfg.label)
    p = cfg.projection
    start = time.perf_counter()
    result = project(generator, targets, num_classes=sampler.num_classes, labels=labels,
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
            save_png(style_row(generator, result.z[i], sampler.num_classes,
                               cfg.style_truncation),
                     folder / "style_row.png", sampler.num_classes, cfg.zoom)
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


if __name__ == "__main__":
    main()
