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
from omegaconf import DictConfig
from torchvision.utils import save_image

from gan.config import CONF_DIR
from gan.files import atomic_write
from gan.sampling import Sampler, to_grid

log = logging.getLogger(__name__)


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
