"""Sample a trained generator: `python -m gan.generate ckpt_path=<file> n=64 [out=grid.png]`.

`out=*.png` (or .jpg) writes a grid; `out=*.pt` writes one float tensor (N, C, H, W) in [-1, 1],
the format `gan.evaluate` scores. Needs only the checkpoint: the generator is rebuilt from the
resolved config the checkpoint carries, on the CPU unless `device=` says otherwise.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import save_image

from gan.callbacks import to_grid
from gan.checkpoint_io import atomic_write
from gan.config import CONF_DIR, build

log = logging.getLogger(__name__)


class Sampler:
    """A generator restored from a training checkpoint, callable as `sampler(n) -> images`."""

    def __init__(self, ckpt_path: str | Path, device: str = "cpu"):
        path = Path(ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"ckpt_path={path} does not exist")
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
        if "config" not in hparams or "state_dict" not in ckpt:
            raise ValueError(f"{path} is not a checkpoint written by gan.train (no config inside)")
        self.config = OmegaConf.create(hparams["config"])
        self.img_shape = tuple(hparams["img_shape"])
        self.num_classes = hparams["num_classes"]
        self.generator = build(self.config.model.generator, img_shape=self.img_shape,
                               num_classes=self.num_classes)
        self.generator.load_state_dict(self._generator_weights(ckpt["state_dict"]))
        self.generator.to(device).eval()
        self.device = torch.device(device)

    @staticmethod
    def _generator_weights(state_dict: dict) -> dict:
        """The sampling generator's weights: an averaged copy (EMA) when the run kept one."""
        for prefix in ("generator_ema.", "generator."):
            weights = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
            if weights:
                return weights
        raise ValueError("the checkpoint holds no generator weights")

    @torch.no_grad()
    def __call__(self, n: int, label: int | None = None, batch_size: int = 1000,
                 seed: int = 0) -> torch.Tensor:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if label is not None and not getattr(self.generator, "conditional", False):
            raise ValueError("label= needs a conditional checkpoint (trained with "
                             "model.conditional=true)")
        if label is not None and not 0 <= label < self.num_classes:
            raise ValueError(f"label={label} is outside 0..{self.num_classes - 1}")
        labels = (torch.full((n,), label) if label is not None
                  else cycled_labels(n, self.num_classes))
        return draw(self.generator, n, self.generator.latent_dim, labels.to(self.device), seed,
                    batch_size)


def cycled_labels(n: int, num_classes: int) -> torch.Tensor:
    """0, 1, ..., K-1, 0, 1, ...: the classes asked of a generator unless one label is given
    (metrics score a conditional generator against exactly these)."""
    return torch.arange(n) % max(num_classes, 1)


@torch.no_grad()
def draw(sample, n: int, latent_dim: int, labels: torch.Tensor, seed: int = 0,
         batch_size: int = 500) -> torch.Tensor:
    """`sample(z, labels)` for n seeded noise vectors, in batches; (N, C, H, W) in [-1, 1] on
    the CPU. One noise stream per seed, so a checkpoint and its training run draw alike."""
    g = torch.Generator(device=labels.device).manual_seed(seed)
    chunks = []
    for y in labels.split(batch_size):
        z = torch.randn(len(y), latent_dim, generator=g, device=labels.device)
        chunks.append(sample(z, y).clamp(-1, 1).cpu())
    return torch.cat(chunks)


def write(images: torch.Tensor, out: Path, nrow: int) -> None:
    suffix = out.suffix.lower()
    if suffix == ".pt":
        atomic_write(out, lambda tmp: torch.save(images, tmp))
    elif suffix in (".png", ".jpg", ".jpeg"):
        atomic_write(out, lambda tmp: save_image(to_grid(images, nrow), tmp, format=suffix[1:]))
    else:
        raise ValueError(f"out={out}: use a .png/.jpg (grid) or .pt (tensor) file name")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="generate")
def main(cfg: DictConfig) -> str:
    if cfg.ckpt_path is None:
        raise ValueError("ckpt_path=<file.ckpt> is required")
    sampler = Sampler(cfg.ckpt_path, cfg.device)
    images = sampler(cfg.n, cfg.label, cfg.batch_size, cfg.seed)
    out = Path(cfg.out)
    write(images, out, cfg.nrow)
    log.info("wrote %s images of shape %s to %s", len(images), tuple(images.shape[1:]), out)
    return str(out)


if __name__ == "__main__":
    main()
