"""Tensor-resident batches, the real datasets, and clear errors for missing or corrupt files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from gan.data.images import MNIST, FakeData, FashionMNIST, ShuffledBatches
from tests.conftest import data_root, needs_mnist


def test_batches_cover_the_epoch_once_and_reshuffle():
    images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1)
    labels = torch.arange(100)
    batches = ShuffledBatches(images, labels, batch_size=10, seed=1)
    first = torch.cat([y for _, y in batches])
    second = torch.cat([y for _, y in batches])
    assert sorted(first.tolist()) == list(range(100))
    assert not torch.equal(first, second)  # a new order each epoch
    batches.set_epoch(0)
    assert torch.equal(torch.cat([y for _, y in batches]), first)  # (seed, epoch) fixes it


def test_batches_scale_to_unit_range_and_match_labels():
    images = torch.tensor([0, 255, 51], dtype=torch.uint8).view(3, 1, 1, 1)
    x, y = next(iter(ShuffledBatches(images, torch.tensor([0, 1, 2]), batch_size=3)))
    expected = {0: -1.0, 1: 1.0, 2: 51 / 127.5 - 1}
    assert {int(k): float(v) for k, v in zip(y, x.flatten())} == pytest.approx(expected)


def test_ranks_take_disjoint_shares():
    images, labels = torch.zeros(40, 1, 1, 1, dtype=torch.uint8), torch.arange(40)
    shares = [torch.cat([y for _, y in ShuffledBatches(images, labels, 5, 0, rank, 2)])
              for rank in (0, 1)]
    assert set(shares[0].tolist()).isdisjoint(shares[1].tolist())
    assert len(shares[0]) == len(shares[1]) == 20


def test_batch_larger_than_dataset_is_refused():
    with pytest.raises(ValueError, match="data.batch_size=64 is larger"):
        ShuffledBatches(torch.zeros(10, 1, 1, 1), torch.zeros(10), batch_size=64)


def test_fake_data_has_requested_shape():
    dm = FakeData(n=32, img_shape=(3, 32, 32), num_classes=4, batch_size=8)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and y.max() < 4


@needs_mnist
@pytest.mark.parametrize("cls", [MNIST, FashionMNIST])
def test_real_datasets_load_whole(cls):
    dm = cls(root=str(data_root()), download=False, batch_size=64)
    dm.setup("fit")
    assert dm.train_images.shape == (60_000, 1, 28, 28) and dm.train_images.dtype == torch.uint8
    counts = dm.train_labels.bincount().tolist()
    if cls is MNIST:  # the canonical class counts
        assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    else:
        assert counts == [6000] * 10
    assert dm.test_split()[0].shape == (10_000, 1, 28, 28)


@pytest.mark.parametrize("download,root_exists", [(False, False), (True, False), (True, True)])
def test_missing_root_names_layout_and_option(tmp_path, monkeypatch, download, root_exists):
    def offline(self, *args, **kwargs):
        (Path(self.raw_folder) / "partial.gz").parent.mkdir(parents=True, exist_ok=True)
        (Path(self.raw_folder) / "partial.gz").write_bytes(b"x")  # as a broken download would
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    monkeypatch.setattr(MNIST.dataset_cls, "download", offline)
    root = tmp_path / "nowhere"
    if root_exists:
        root.mkdir()
    dm = MNIST(root=str(root), download=download)
    with pytest.raises(FileNotFoundError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert "data.root=" in message and "GAN_DATA_DIR" in message
    assert "MNIST/raw/train-images-idx3-ubyte" in message
    # a mistyped root is not created, nor downloaded into; a failed download leaves nothing
    assert ("no network" in message) == (download and root_exists)
    assert ("does not exist" in message) == (download and not root_exists)
    assert root.exists() == root_exists and (not root_exists or list(root.iterdir()) == [])


@needs_mnist
@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_file_gives_clear_error(tmp_path, damage):
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(data_root() / "MNIST" / "raw", raw)
    target = raw / "train-images-idx3-ubyte"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00" * 64)
    dm = MNIST(root=str(tmp_path), download=False)
    with pytest.raises(ValueError, match="corrupt or truncated.*train"):
        dm.setup("fit")
