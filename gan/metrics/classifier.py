"""A small digit/clothing CNN whose penultimate features drive the offline metrics.

Inception-v3 features are ill-posed on 28x28 grey digits (pytorch-fid #12) and its weights
download at run time, so each dataset gets its own classifier trained on its training split.
The weights ship in `gan/assets/` (float16, ~0.2 MB) and are pinned by sha256 in
`gan/assets/checksums.json`: a metric value is only comparable with another computed by the same
extractor, so loading refuses a file whose hash differs from the registry.

Train (seeded, ~2 min per dataset on 2 CPU cores): `python -m gan.classifier data=mnist`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan.data import images as gan_data
from gan.data.registry import DATASETS

log = logging.getLogger(__name__)


ASSETS = Path(__file__).resolve().parent.parent / "assets"
CHECKSUMS = ASSETS / "checksums.json"


# Dataset names as in conf/data/*.yaml -> the data module that reads them.


# The bar each shipped classifier has to clear on the test split (issue #3).
MIN_TEST_ACCURACY = {"mnist": 0.99, "fashion_mnist": 0.90}


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class Classifier(nn.Module):
    """Three conv blocks (28 -> 14 -> 7 -> 3) and a 128-d penultimate layer.

    Narrow on purpose: 10k images go through it in ~1 s on two CPU cores, which keeps all metrics
    on 10k samples inside the 15 s budget. `forward` returns the features, so the module itself
    is a valid torchmetrics FID/KID extractor (`num_features` spares torchmetrics its 299x299
    dummy forward); `logits` and `features_and_logits` serve IS and the class histogram.
    Inputs are (N, 1, 28, 28) float in [-1, 1], the generator's range.
    """

    def __init__(self, widths=(16, 32, 64), num_features: int = 128, num_classes: int = 10):
        super().__init__()
        a, b, c = widths
        self.body = nn.Sequential(_block(1, a), _block(a, b), _block(b, c), nn.Flatten())
        self.fc = nn.Linear(c * 3 * 3, num_features)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(num_features, num_classes)
        self.num_features, self.num_classes = num_features, num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:  # torchmetrics-style uint8 images are accepted too
            x = gan_data.to_unit_range(x)
        return F.relu(self.fc(self.body(x)))  # (N, num_features)

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.head(self.dropout(f))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def weights_path(dataset: str) -> Path:
    _check_name(dataset)
    return ASSETS / f"classifier_{dataset}.pt"


def regenerate_command(dataset: str) -> str:
    return f"python -m gan.classifier data={dataset}"


CLASSIFIED = ("mnist", "fashion_mnist")  # datasets with a shipped classifier of their own


def _check_name(dataset: str) -> None:
    if dataset not in CLASSIFIED:
        raise ValueError(f"Unknown dataset {dataset!r}; classifiers exist for {sorted(CLASSIFIED)}")


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def registered_checksums(registry: Path = CHECKSUMS) -> dict[str, str]:
    return json.loads(registry.read_text()) if registry.is_file() else {}


def extractor_id(dataset: str) -> str:
    """The registered sha256 of `dataset`'s classifier: what a metric value is relative to."""
    expected = registered_checksums().get(weights_path(dataset).name)
    if expected is None:
        raise _ChecksumError(dataset, weights_path(dataset), None, None)
    return expected


class _ChecksumError(RuntimeError):
    def __init__(self, dataset: str, path: Path, expected: str | None, actual: str | None):
        if not path.is_file():
            what = f"Classifier weights {path} are missing."
        elif expected is None:
            what = f"Classifier weights {path} have no entry in {CHECKSUMS}."
        else:
            what = (
                f"Classifier weights {path} do not match the registry {CHECKSUMS}:\n"
                f"  expected sha256 {expected}\n  actual   sha256 {actual}\n"
                "  (a git-lfs pointer, a truncated copy or weights retrained elsewhere?) Metrics "
                "from different extractors are not comparable, so loading refuses them."
            )
        super().__init__(f"{what}\n  Regenerate with: {regenerate_command(dataset)}")


def load_classifier(dataset: str, path: str | os.PathLike | None = None) -> Classifier:
    """The shipped classifier for `dataset`: eval mode, float32, channels_last, frozen; its
    sha256 is checked against the registry first."""
    _check_name(dataset)
    path = Path(path) if path is not None else weights_path(dataset)
    expected = registered_checksums().get(weights_path(dataset).name)
    actual = sha256(path) if path.is_file() else None
    if expected is None or actual != expected:
        raise _ChecksumError(dataset, path, expected, actual)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    with torch.random.fork_rng(devices=[]):  # the initial weights, overwritten below, would
        model = Classifier(**blob["config"])  # draw from (and move) the caller's CPU stream
    model.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    # channels_last: ~3x faster CPU inference (the 1-channel first conv is slow in NCHW)
    return model.to(memory_format=torch.channels_last).eval().requires_grad_(False)


def save_classifier(model: Classifier, dataset: str, widths, registry: Path = CHECKSUMS) -> str:
    """Write float16 weights atomically and record their sha256 in the registry."""
    path = weights_path(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.half() if v.is_floating_point() else v).contiguous()
        for k, v in model.state_dict().items()
    }
    config = {
        "widths": list(widths),
        "num_features": model.num_features,
        "num_classes": model.num_classes,
    }
    tmp = path.with_suffix(".pt.tmp")
    torch.save({"config": config, "state_dict": state}, tmp)
    os.replace(tmp, path)
    digest = sha256(path)
    checksums = registered_checksums(registry)
    checksums[path.name] = digest
    tmp = registry.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(checksums.items())), indent=2) + "\n")
    os.replace(tmp, registry)
    return digest


@torch.no_grad()
def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor, batch: int = 500):
    """Top-1 accuracy of `model` on uint8 (N, 1, 28, 28) `images`."""
    model.eval()
    correct = 0
    for x, y in zip(images.split(batch), labels.split(batch)):
        correct += (model.logits(gan_data.to_unit_range(x)).argmax(1) == y).sum().item()
    return correct / len(labels)


def train(
    dataset: str,
    root: str | None = None,
    download: bool = False,
    epochs: int = 6,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 5e-4,
    widths=(16, 32, 64),
    seed: int = 0,
) -> tuple[Classifier, float]:
    """Train on the training split; return the model and its test accuracy."""
    _check_name(dataset)
    torch.manual_seed(seed)
    dm = DATASETS[dataset](root=root, download=download)
    train_x, train_y = dm.load(train=True)
    test_x, test_y = dm.test_split()
    model = Classifier(widths=widths)
    steps = epochs * (len(train_x) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    # One-cycle reaches >99 % on MNIST in a handful of epochs; it is what keeps this under 5 min.
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    batches = gan_data.ShuffledBatches(train_x, train_y, batch_size, seed=seed)
    start = time.perf_counter()
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        model.train()
        for x, y in batches:
            # Random +-2 px shifts: cheap augmentation that makes features less brittle to the
            # small misalignments generators produce.
            x = _random_shift(x, 2)
            loss = F.cross_entropy(model.logits(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(model, test_x, test_y)
        log.info(
            "epoch %d  loss %.4f  test acc %.4f  (%.0f s)",
            epoch,
            loss.item(),
            acc,
            time.perf_counter() - start,
        )
    return model.eval(), acc


def _random_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), value=-1.0)  # -1 is the background colour
    dx, dy = torch.randint(0, 2 * pad + 1, (2,)).tolist()  # one shift per batch: cheap
    return padded[:, :, dy : dy + h, dx : dx + w]
