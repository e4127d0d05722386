"""A user's image (a phone photo of a digit on paper, a drawing) in the training data's form.

MNIST was made this way (LeCun et al., "The MNIST database"): bilevel NIST scans, the digit's
bounding box scaled to fit 20x20 with its aspect ratio kept (anti-aliasing gives the grey edges),
light ink on a dark field, placed in 28x28 so that its centre of mass sits at the centre.
`digits()` repeats those steps; each one can be turned off. Measured on MNIST's first 10,000
training images: the centre of mass sits at (14.00, 14.00) +- 0.29 in pixel-index coordinates
(pixel centres at 0..27): size / 2, shifted by whole pixels (a uniform +-0.5 has that spread),
not the field's geometric centre 13.5; and 46 % of the
ink pixels are above 0.9, which a phone photo's grey strokes only reach after a contrast step.
Images for other datasets are only resized to the training shape (`resize()`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

RESAMPLE = Image.Resampling.LANCZOS  # the fit's resize: anti-aliased edges, as MNIST's
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class Steps:
    """Which of MNIST's steps to apply (`preprocess.*` in conf/project.yaml). Grey or colour is
    not a choice: it follows the training data's channels."""

    invert: str | bool = "auto"  # auto: invert when the border (the paper) is lighter than ink
    crop: bool = True  # to the ink's bounding box
    fit: int | None = 20  # the box's longest side, in pixels; null: keep the crop's size
    center: bool = True  # centre of mass at MNIST's position in the field (size / 2)
    ink_threshold: float = 0.2  # ink: above this fraction of the paper-to-ink range
    contrast: bool = True  # strokes saturated as MNIST's: half the ink pixels reach 0.95


def image_files(path: str | Path) -> list[Path]:
    """`path` itself, or the images in a folder (sorted by name)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"input={path} is a folder with no {'/'.join(IMAGE_SUFFIXES)} files")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"input={path} does not exist")
    return [path]


def open_image(path: str | Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"input={path} is not an image PIL can read (png, jpg, ...): "
                         f"{err}") from None


def _eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit (or 32-bit integer) grey image as 8-bit, scaled, not clipped: PIL's convert("L")
    clips every value above 255 to white, and a 16-bit scan then has no ink."""
    if image.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return image
    x = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or x.max() > 255 else 255.0
    if image.mode == "F":
        top = max(float(x.max()), 1.0) if x.max() > 1 else 1.0
    return Image.fromarray(np.clip(np.round(x / top * 255), 0, 255).astype(np.uint8), "L")


def _flatten(image: Image.Image, grayscale: bool) -> Image.Image:
    """Grey ("L") or "RGB". Transparency is composited onto paper of the colour that sets the
    ink off: white for dark ink, black for light ink (white strokes on a transparent sheet)."""
    image = _eight_bit(image)
    if image.mode in ("RGBA", "LA", "P", "PA") or (image.mode in ("L", "RGB")
                                                   and "transparency" in image.info):
        image = image.convert("RGBA")
        rgba = np.asarray(image, dtype=np.float64) / 255
        ink = rgba[..., 3] > 0.5
        light = ink.any() and rgba[..., :3][ink].mean() > 0.5 and not ink.all()
        paper = Image.new("RGBA", image.size, (0, 0, 0, 255) if light else (255, 255, 255, 255))
        image = Image.alpha_composite(paper, image)
    return image.convert("L" if grayscale else "RGB")


def ink_is_dark(x: np.ndarray) -> bool:
    """Whether the ink is darker than the paper: the paper is the border's median, the ink the
    extreme (dark or light) that lies farther from it. Decided relative to the ink, so grey
    paper under dim light (0.4) with dark ink is still dark ink on light paper."""
    paper = float(np.median(np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])))
    dark, light = np.percentile(x, [0.2, 99.8])
    return paper - dark > light - paper


def digits(image: Image.Image, steps: Steps | None = None, size: int = 28, name: str = "input"
           ) -> np.ndarray:
    """MNIST's recipe: (size, size) float in [0, 1], light ink on black."""
    steps = steps or Steps()
    x = np.asarray(_flatten(image, grayscale=True), dtype=np.float32) / 255.0  # (H, W)
    invert = steps.invert if steps.invert != "auto" else ink_is_dark(x)
    if invert:
        x = 1.0 - x
    # Paper is rarely black and ink rarely white in a photo: stretch background..ink to 0..1.
    background = float(np.median(np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])))
    ink = float(x.max())
    if ink - background < 0.1:
        raise ValueError(f"{name} has no ink: its darkest and lightest pixels differ by "
                         f"{abs(ink - background):.3f} of the range (a blank image?)")
    x = np.clip((x - background) / (ink - background), 0.0, 1.0)
    if steps.crop:
        rows = np.flatnonzero((x > steps.ink_threshold).any(axis=1))
        cols = np.flatnonzero((x > steps.ink_threshold).any(axis=0))
        x = x[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    if steps.fit:
        h, w = x.shape
        scale = steps.fit / max(h, w)
        new = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL sizes are (W, H)
        x = np.asarray(Image.fromarray(x).resize(new, RESAMPLE)).clip(0, 1)
    if steps.contrast:
        x = saturate(x)
    return _place(x, size, steps.center)


def saturate(x: np.ndarray, share: float = 0.5, level: float = 0.95) -> np.ndarray:
    """A gain that brings `share` of the ink pixels (> 0.1) to `level` or above, as in MNIST
    (50 % of its ink above 0.9, from bilevel scans), keeping the strokes' grey edges and width
    (a threshold would thin faint strokes: a drawn 3 then projected as an 8, measured)."""
    ink = x[x > 0.1]
    if ink.size == 0:
        return x
    return np.clip(x * max(1.0, level / float(np.quantile(ink, 1 - share))), 0.0, 1.0)


def _place(x: np.ndarray, size: int, center: bool) -> np.ndarray:
    """Paste `x` into a black (size, size) field: its centre of mass at MNIST's position
    (size / 2 in pixel-index coordinates) to the nearest pixel, as MNIST itself was shifted
    (its centres spread +-0.29, a uniform +-0.5), or its box centred when `center` is off.
    What falls outside the field is cut off."""
    h, w = x.shape
    if center:
        ys, xs = np.indices(x.shape)
        mass = x.sum()
        cy, cx = (ys * x).sum() / mass, (xs * x).sum() / mass
        target = size / 2
    else:
        cy, cx = (h - 1) / 2, (w - 1) / 2
        target = (size - 1) / 2
    top, left = round(target - cy), round(target - cx)
    field = np.zeros((size, size), dtype=np.float32)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, size), min(left + w, size)
    if y1 > y0 and x1 > x0:
        field[y0:y1, x0:x1] = x[y0 - top:y1 - top, x0 - left:x1 - left]
    return field


def resize(image: Image.Image, img_shape, steps: Steps | None = None) -> np.ndarray:
    """Other datasets: the whole image resized to (H, W), grey or RGB as the training data."""
    channels, height, width = img_shape
    image = _flatten(image, grayscale=channels == 1).resize((width, height),
                                                            Image.Resampling.LANCZOS)
    x = np.asarray(image, dtype=np.float32) / 255.0
    if steps is not None and steps.invert is True:
        x = 1.0 - x
    return x


def to_training_form(path: str | Path, img_shape, mnist_like: bool, steps: Steps | None = None
                     ) -> torch.Tensor:
    """One image file as a (C, H, W) tensor in [-1, 1], the generator's range."""
    image = open_image(path)
    channels, height, width = img_shape
    if mnist_like and channels == 1 and height == width:
        x = digits(image, steps, height, name=f"input={path}")
    else:
        x = resize(image, img_shape, steps)
    t = torch.from_numpy(np.ascontiguousarray(x)).float()
    t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)  # (C, H, W)
    return t * 2 - 1
