"""`data=folder`: your own images, from a folder of PNG/JPG files.

Layouts (as torchvision's ImageFolder): `root/*.png` (one class), or `root/<class>/**/*.png`
(sorted subfolder names become labels 0..K-1; files directly under root are then ignored).
Every image is resized (shorter side) and centre-cropped to `size`, converted to `channels`
(1: grayscale, 3: RGB), decoded once, and kept as one uint8 tensor like MNIST.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from gan.data.images import ImageDataModule

log = logging.getLogger(__name__)


EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _images_under(folder: Path, recursive: bool) -> list[Path]:
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in files
                  if p.is_file() and p.suffix.lower() in EXTENSIONS and _visible(p))


class RandomAffine:
    """Real-image augmentation on a float batch in [-1, 1]: per-sample horizontal flip, rotation
    up to +-`rotate` degrees, and a random crop keeping a `crop` fraction of each side, resized
    back; one affine resampling per batch. Off by default: without DiffAugment D only ever sees
    augmented reals, and G learns to draw the flips, tilts and zooms (Karras et al. 2020, ADA,
    call this leaking)."""

    def __init__(self, hflip: bool = False, rotate: float = 0.0, crop: float = 1.0):
        if rotate < 0 or not 0.0 < crop <= 1.0:
            raise ValueError(f"data.augment needs rotate >= 0 and 0 < crop <= 1, "
                             f"got rotate={rotate}, crop={crop}")
        self.hflip, self.rotate, self.crop = hflip, rotate, crop

    @property
    def active(self) -> bool:
        return self.hflip or self.rotate > 0 or self.crop < 1

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        b, device = images.size(0), images.device
        flip = (torch.rand(b, device=device) < 0.5) if self.hflip else torch.zeros(
            b, dtype=torch.bool, device=device)
        if self.rotate == 0 and self.crop == 1:  # flips only: exact, no resampling
            return torch.where(flip[:, None, None, None], images.flip(3), images)
        angle = (torch.rand(b, device=device) * 2 - 1) * math.radians(self.rotate)
        scale = self.crop + (1 - self.crop) * torch.rand(b, device=device)  # side kept
        shift = (torch.rand(b, 2, device=device) * 2 - 1) * (1 - scale)[:, None]  # stay inside
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        sx = torch.where(flip, -1.0, 1.0)
        theta = torch.stack([torch.stack([cos * sx, -sin, shift[:, 0]], 1),
                             torch.stack([sin * sx, cos, shift[:, 1]], 1)], 1)  # (B, 2, 3)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                             align_corners=False)


class AugmentedBatches:
    """Wraps ShuffledBatches: the same batches, each augmented on the device it lives on."""

    def __init__(self, batches, augment: RandomAffine):
        self.batches, self.augment = batches, augment

    def __len__(self) -> int:
        return len(self.batches)

    def __getattr__(self, name):  # set_epoch, batch_size, ...
        return getattr(self.batches, name)

    def __iter__(self):
        for images, labels in self.batches:
            yield self.augment(images), labels


class FolderData(ImageDataModule):
    """Images from `root`; class subfolders become labels. `img_shape` and `num_classes` are
    known at construction (only folder names are listed then; decoding happens in `setup`).

    An unreadable file is skipped, and the skips are reported in one warning with their count;
    no readable image at all is an error. There is no held-out split: `test_split()` returns the
    training images, so metrics against it measure fit to the training set, not generalisation.
    """
    name = "folder"

    def __init__(self, root: str, size: int = 64, channels: int = 3,
                 augment: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        if channels not in (1, 3):
            raise ValueError(f"data.channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        if size < 1:
            raise ValueError(f"data.size must be >= 1, got {size}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root={self.root} is not a folder; point data.root at "
                                    f"a folder of images (or of class subfolders of images)")
        self.size, self.channels = size, channels
        self.augment = RandomAffine(**(augment or {}))
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir() and _visible(p)
                              and _images_under(p, recursive=True))
        self.img_shape = (channels, size, size)
        self.num_classes = max(len(self.classes), 1)
        self._loaded: tuple[torch.Tensor, torch.Tensor] | None = None

    def files(self) -> list[tuple[Path, int]]:
        if not self.classes:
            return [(p, 0) for p in _images_under(self.root, recursive=False)]
        ignored = _images_under(self.root, recursive=False)
        if ignored:
            log.warning("data.root=%s has class subfolders; ignoring the %d image(s) directly "
                        "under it", self.root, len(ignored))
        return [(p, label) for label, name in enumerate(self.classes)
                for p in _images_under(self.root / name, recursive=True)]

    def train_size(self) -> int:
        return len(self.files())

    def read(self, path: Path) -> torch.Tensor:
        with Image.open(path) as img:
            img = img.convert("L" if self.channels == 1 else "RGB")
            # Shorter side to `size`, then the centre square: ImageOps.fit does both at once.
            img = ImageOps.fit(img, (self.size, self.size), method=Image.Resampling.BICUBIC)
            pixels = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        return pixels.view(self.size, self.size, self.channels).permute(2, 0, 1)  # (C, H, W)

    def load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if not train:
            log.info("data=folder has no held-out split: test_split() returns the training images")
        if self._loaded is None:
            self._loaded = self._read_all()
        return self._loaded

    def _read_all(self) -> tuple[torch.Tensor, torch.Tensor]:
        files = self.files()
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(EXTENSIONS)}) under data.root="
                                    f"{self.root} or its class subfolders")
        images, labels, skipped = [], [], []
        for path, label in files:
            try:
                images.append(self.read(path))
                labels.append(label)
            except (OSError, ValueError, SyntaxError) as err:  # truncated, not an image, ...
                skipped.append(f"{path.name}: {err}")
        if not images:
            raise ValueError(f"none of the {len(files)} image files under data.root={self.root} "
                             f"could be read (first: {skipped[0]})")
        if skipped:
            log.warning("data=folder skipped %d unreadable file(s) of %d under %s (first: %s)",
                        len(skipped), len(files), self.root, skipped[0])
        log.info("Loaded %d images from %s: %s, %d class(es)", len(images), self.root,
                 self.img_shape, self.num_classes)
        return torch.stack(images), torch.tensor(labels, dtype=torch.long)  # (N, C, H, W) uint8

    def train_dataloader(self):
        batches = super().train_dataloader()
        return AugmentedBatches(batches, self.augment) if self.augment.active else batches
