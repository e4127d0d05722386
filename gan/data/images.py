"""Tensor-resident image data modules.

Each split is loaded once into one uint8 tensor (on the training device) and served as shuffled
batches by slicing it: torchvision's per-sample PIL path costs ~18 ms per 64-image batch on two
CPU cores, about a third of a small GAN step.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import lightning as L
import torch

from gan.io.spec import ImageSpec, LabelSpace

log = logging.getLogger(__name__)


def default_root() -> str:
    """`GAN_DATA_DIR` when set, else `./data` (the config key `data.root` overrides both)."""
    return os.environ.get("GAN_DATA_DIR", "./data")


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range of the generator's Tanh."""
    return images.float().div_(127.5).sub_(1.0)


class ShuffledBatches:
    """Shuffled (images, labels) batches sliced out of two resident tensors.

    The permutation is drawn from (seed, epoch), so any epoch's order can be redrawn. Under DDP
    every rank takes its own stride of one permutation, so the ranks together cover the epoch
    once.

    Resumable mid-epoch: Lightning saves `state_dict()` (the epoch in progress and how many
    batches it has served) in checkpoints and hands it back to `load_state_dict` on resume; the
    first epoch after the resume then skips the batches already trained on. Lightning also
    passes its epoch counter to `set_epoch` before each epoch (it looks for `.sampler`), so a
    resumed run draws the resumed epoch's order, not the previous one's.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        self.images, self.labels = images, labels
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0  # the epoch the next iteration serves
        self.position = (0, 0)  # (epoch being served, batches of it handed out so far)
        self._resume_at: tuple[int, int] | None = None  # (epoch, batches to skip) from a ckpt
        if len(self) == 0:
            raise ValueError(
                f"data.batch_size={batch_size} is larger than the {self._per_rank()} images "
                f"each of {world_size} process(es) holds; lower data.batch_size"
            )

    @property
    def sampler(self) -> ShuffledBatches:
        """Lightning calls `loader.sampler.set_epoch(epoch)` before every epoch."""
        return self

    def _per_rank(self) -> int:
        return len(self.images) // self.world_size

    def __len__(self) -> int:
        # The last partial batch is dropped: BatchNorm statistics of a 3-image batch are noise.
        return self._per_rank() // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict:
        return {"epoch": self.position[0], "served": self.position[1]}

    def load_state_dict(self, state: dict) -> None:
        self._resume_at = (int(state["epoch"]), int(state["served"]))

    def __iter__(self):
        # A generator: this body runs at the first next(), after Lightning's set_epoch.
        epoch, skip = self.epoch, 0
        if self._resume_at is not None and self._resume_at[0] == epoch:
            skip = self._resume_at[1]  # resumed inside this epoch: its first batches are done
        self._resume_at = None
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.images), generator=g)
        order = order[self.rank :: self.world_size][: self._per_rank()].to(self.images.device)
        self.epoch = epoch + 1  # a loader re-iterated without set_epoch still reshuffles
        for i in range(skip, len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            self.position = (epoch, i + 1)  # what a checkpoint taken now must record
            yield to_unit_range(self.images[idx]), self.labels[idx]


class ImageDataModule(L.LightningDataModule):
    """Base: subclasses fill `self.train_images/labels` and `self.test_images/labels` (uint8,
    (N, C, H, W)) in `load(split)`. Shapes are known before loading so models can be built
    from `img_shape` and `num_classes` alone."""

    img_shape: tuple[int, int, int]
    num_classes: int
    name: str | None = None  # the registry's name (gan.data.registry), stored in checkpoints
    extractor: str | None = None  # the feature extractor metrics.extractor=auto picks for it
    final_n: int = 10_000  # samples the final metrics score: this data's protocol n
    reference_size: int | None = None  # held-out images the metrics compare with (n at most)
    # The metric this data's runs are ranked by (metrics.json `protocol.primary`, gan.report)
    # and which way is better: FID unless the data has a better-suited score of its own.
    primary_metric: str = "fid"
    primary_better: str = "lower"

    @property
    def spec(self) -> ImageSpec:
        """What this data's images are: shape, and the classes its labels name."""
        return ImageSpec.of(self.img_shape, LabelSpace("classes", int(self.num_classes))
                            if self.num_classes > 1 else LabelSpace())

    def __init__(self, batch_size: int = 64, seed: int = 0, on_device: bool = True):
        super().__init__()
        self.batch_size, self.seed, self.on_device = batch_size, seed, on_device
        self.train_images = self.train_labels = None
        self.test_images = self.test_labels = None

    def load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def train_size(self) -> int | None:
        """How many training images there are, known without loading them (None: unknown):
        settings that depend on it are checked against it before any work."""
        return None

    def _device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        if self.on_device and trainer is not None:
            return trainer.strategy.root_device
        return torch.device("cpu")

    def setup(self, stage: str | None = None) -> None:
        if self.train_images is None:
            self.train_images, self.train_labels = self.load(train=True)
        device = self._device()
        self.train_images = self.train_images.to(device)
        self.train_labels = self.train_labels.to(device)

    def test_split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The held-out split (uint8, CPU); metrics compare samples against it."""
        if self.test_images is None:
            self.test_images, self.test_labels = self.load(train=False)
        return self.test_images, self.test_labels

    def train_dataloader(self) -> ShuffledBatches:
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        # The epoch is Lightning's to set (ShuffledBatches.sampler), before each epoch starts:
        # trainer.current_epoch here is still the finished epoch's after a resume.
        return ShuffledBatches(
            self.train_images, self.train_labels, self.batch_size, self.seed, rank, world
        )


class _TorchvisionIDX(ImageDataModule):
    """MNIST-format datasets read through torchvision from `<root>/<Name>/raw/*-ubyte`."""

    dataset_cls: type
    files = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    sizes = {True: 60_000, False: 10_000}
    reference_size = 10_000
    img_shape = (1, 28, 28)
    num_classes = 10

    def __init__(self, root: str | None = None, download: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.root = Path(root if root is not None else default_root()).expanduser()
        self.download = download

    def train_size(self) -> int:
        return self.sizes[True]

    @property
    def raw_dir(self) -> Path:
        return self.root / self.dataset_cls.__name__ / "raw"

    def _missing_error(self, cause: Exception | None) -> FileNotFoundError:
        name = self.dataset_cls.__name__
        layout = "\n".join(f"    {self.raw_dir / f}" for f in self.files)
        why = f" (no download: {cause})" if cause else " (download=false)"
        return FileNotFoundError(
            f"{name} not found under data.root={self.root}{why}.\n"
            f"  Expected the raw IDX files (torchvision's layout):\n{layout}\n"
            f"  Point data.root=<dir> (or the GAN_DATA_DIR environment variable) at the folder "
            f"that holds {name}/raw/."
        )

    def prepare_data(self) -> None:
        self._dataset(train=True)  # downloads once, on rank 0 only (Lightning's contract)

    def _dataset(self, train: bool):
        if not all((self.raw_dir / f).is_file() for f in self.files):
            if not self.download:
                raise self._missing_error(None)
            if not self.root.is_dir():  # a typo in data.root: do not create it
                raise self._missing_error(FileNotFoundError(f"{self.root} does not exist"))
            created = [d for d in (self.raw_dir.parent, self.raw_dir) if not d.exists()]
            try:  # torchvision checks the MD5 of what it downloads
                self.dataset_cls(str(self.root), train=train, download=True)
            except Exception as cause:  # offline: URLError, RuntimeError, OSError ...
                for folder in created[:1]:  # a failed download leaves nothing behind
                    shutil.rmtree(folder, ignore_errors=True)
                raise self._missing_error(cause) from cause
        try:
            return self.dataset_cls(str(self.root), train=train, download=False)
        except Exception as cause:  # truncated: AssertionError/RuntimeError from the parser
            raise self._corrupt_error(train, cause) from cause

    def _corrupt_error(self, train: bool, cause: Exception) -> ValueError:
        split = "train" if train else "t10k"
        return ValueError(
            f"{self.dataset_cls.__name__} files under {self.raw_dir} are corrupt or truncated "
            f"({split} split: {type(cause).__name__}: {cause}). Delete them and download again, "
            f"or copy intact {split}-*-ubyte files there."
        )

    def load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ds = self._dataset(train)
        images, labels = ds.data, ds.targets
        expected = (self.sizes[train], *self.img_shape[1:])
        if tuple(images.shape) != expected or tuple(labels.shape) != expected[:1]:
            got = f"images {tuple(images.shape)}, labels {tuple(labels.shape)}"
            raise self._corrupt_error(train, ValueError(f"got {got}, expected {expected}"))
        if int(labels.max()) >= self.num_classes:
            raise self._corrupt_error(train, ValueError(f"label {int(labels.max())} out of range"))
        split = "train" if train else "test"
        log.info("Loaded %s %s split: %s", self.dataset_cls.__name__, split, tuple(images.shape))
        return images.unsqueeze(1).contiguous(), labels.long()  # (N, 1, H, W) uint8


class MNIST(_TorchvisionIDX):
    name = extractor = "mnist"
    from torchvision.datasets import MNIST as dataset_cls


class FashionMNIST(_TorchvisionIDX):
    name = extractor = "fashion_mnist"
    from torchvision.datasets import FashionMNIST as dataset_cls


class FakeData(ImageDataModule):
    """Random images of any shape, for fast tests and smoke runs without a dataset."""
    name = "fake"

    def __init__(self, n: int = 512, img_shape=(1, 28, 28), num_classes: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.n, self.img_shape, self.num_classes = n, tuple(img_shape), num_classes

    def train_size(self) -> int:
        return self.n

    def load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed + int(train))
        n = self.n if train else max(self.n // 4, 1)
        images = torch.randint(0, 256, (n, *self.img_shape), generator=g, dtype=torch.uint8)
        return images, torch.randint(0, self.num_classes, (n,), generator=g)
