"""Batches/s of the tensor-resident loader vs torchvision's per-sample Dataset + DataLoader.

    GAN_DATA_DIR=../shared/data python benchmarks/data_speed.py

Both serve shuffled (64, 1, 28, 28) float batches in [-1, 1] from MNIST's train split, in the
same process, alternating, so machine noise hits both alike; the ratio is the figure to read.
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from gan.data.images import MNIST, default_root

BATCHES, ROUNDS = 200, 3


def rate(batches) -> float:
    start = time.perf_counter()
    for i, _ in enumerate(batches):
        if i + 1 == BATCHES:
            break
    return BATCHES / (time.perf_counter() - start)


def main() -> None:
    torch.manual_seed(0)
    dm = MNIST(root=default_root(), download=False, batch_size=64, on_device=False)
    dm.setup("fit")
    tv = datasets.MNIST(default_root(), train=True, download=False, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]))
    loader = DataLoader(tv, batch_size=64, shuffle=True, num_workers=0, drop_last=True)
    ours, theirs = [], []
    for _ in range(ROUNDS):
        ours.append(rate(dm.train_dataloader()))
        theirs.append(rate(loader))
    o, t = max(ours), max(theirs)
    print(f"tensor-resident: {o:9.0f} batches/s   torchvision per-sample: {t:7.0f} batches/s")
    print(f"ratio: {o / t:.1f}x  (batch 64, best of {ROUNDS} rounds of {BATCHES} batches, "
          f"{torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
