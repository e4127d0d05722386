"""Optional Inception-v3 FID, only to compare with published numbers (`inception_weights=` in
`gan.evaluate`). The classifier-feature metrics of gan/metrics/scores.py remain the reference here.

Needs the optional extra `pip install -e ".[inception]"` (torch-fidelity) and a local copy of
the 2015-12-05 Inception weights (`weights-inception-2015-12-05-6726825d.pth` of torch-fidelity,
the same file as pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`). Nothing is ever
downloaded: without a readable weights file this raises before building the network.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torchmetrics.image.fid import FrechetInceptionDistance

WEIGHTS_OPTION = "inception_weights"
INSTALL_HINT = 'pip install -e ".[inception]"'
SECONDS_PER_1000 = 250  # measured: ~0.25 s per 28x28 image on one CPU thread (fake + real count)


def check_weights(path: str | Path | None) -> Path:
    """The weights file, checked to be a readable Inception state dict (loaded with
    weights_only=True first: torch-fidelity then unpickles it with weights_only=False)."""
    if path is None or not Path(path).expanduser().is_file():
        raise FileNotFoundError(
            f"{WEIGHTS_OPTION}={path}: no such file. Give a local Inception weights file "
            "(weights-inception-2015-12-05-6726825d.pth); they are never downloaded"
        )
    path = Path(path).expanduser()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unreadable, torn, or not a plain tensor pickle
        raise FileNotFoundError(
            f"{WEIGHTS_OPTION}={path}: unreadable as Inception weights "
            f"({type(err).__name__}: {(str(err).splitlines() or [''])[0]}); "
            "they are never downloaded"
        ) from err
    fc = state.get("fc.weight") if isinstance(state, dict) else None
    if not torch.is_tensor(fc) or tuple(fc.shape) != (1008, 2048):
        raise ValueError(
            f"{WEIGHTS_OPTION}={path} is not an Inception-v3 2015-12-05 state dict "
            "(expected fc.weight of shape (1008, 2048))"
        )
    return path


def _require_torch_fidelity() -> None:
    try:
        import torch_fidelity  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"fid_inception ({WEIGHTS_OPTION}=) needs the optional package torch-fidelity: "
            f"{INSTALL_HINT}"
        ) from err


def _to_rgb01(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) or (N, 28, 28), float in [-1, 1] or uint8 -> (N, 3, 28, 28) in [0, 1]."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"expected (N, 1, H, W) grey images, got {tuple(images.shape)}")
    x = images.float() / 255 if images.dtype == torch.uint8 else (images.float() + 1) / 2
    return x.clamp_(0, 1).expand(-1, 3, -1, -1)


def _tf1_resize() -> dict:
    """Keyword for the TF1 resize; also refuses a torchmetrics (< 1.7) that would ignore the
    weights path and download instead."""
    params = inspect.signature(FrechetInceptionDistance.__init__).parameters
    if "feature_extractor_weights_path" not in params:
        raise ImportError(
            f"{WEIGHTS_OPTION}= needs torchmetrics>=1.7 (feature_extractor_weights_path)"
        )
    # torchmetrics >= 1.8 defaults to torch's antialiased resize; < 1.8 always resizes TF1-style
    return {"antialias": False} if "antialias" in params else {}


@torch.no_grad()
def inception_fid(
    fake: torch.Tensor, real: torch.Tensor, weights_path: str | Path, batch: int = 100
) -> float:
    """FID in Inception-v3 pool features (2048) between grey image sets (float in [-1, 1] or
    uint8). The extractor quantises to uint8 and resizes to 299x299 itself, TF1-style
    (antialias=False: the resize of the original TTUR code, as torch-fidelity does)."""
    path = check_weights(weights_path)
    _require_torch_fidelity()
    if len(fake) < 2 or len(real) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(fake)} and {len(real)}")
    fid = FrechetInceptionDistance(
        feature=2048, normalize=True, feature_extractor_weights_path=str(path), **_tf1_resize()
    )
    for images, is_real in ((real, True), (fake, False)):
        for chunk in images.split(batch):
            fid.update(_to_rgb01(chunk.cpu()), real=is_real)
    return float(fid.compute())
