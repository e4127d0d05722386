"""The datasets that have a name: the one way a run, a checkpoint or an entry point says which
data it means (metric classifiers, `gan.evaluate data=`, `gan.project`)."""

from __future__ import annotations

from collections.abc import Mapping

from gan.data.images import MNIST, FashionMNIST, ImageDataModule
from gan.data.stacked import StackedMNIST
from gan.io.legacy import current_target

DATASETS: dict[str, type[ImageDataModule]] = {"mnist": MNIST, "fashion_mnist": FashionMNIST,
                                              "stacked_mnist": StackedMNIST}


def dataset_name(config: Mapping | None) -> str | None:
    """The registry name of the data a run used, from its stored config: the `data.name` a
    checkpoint written since 2026-12 carries, else the data module's class path (old or new)."""
    data = (config or {}).get("data") or {}
    if data.get("name"):  # fake and folder data have names, but nothing to be scored against
        return data["name"] if data["name"] in DATASETS else None
    target = current_target(str(data.get("_target_", "")))
    for name, cls in DATASETS.items():
        if target == f"{cls.__module__}.{cls.__qualname__}":
            return name
    return None


def primary_of(dataset: str | None) -> tuple[str, str]:
    """(metric, "lower" | "higher") the named data declares its runs are ranked by; FID, lower
    better, for data without a name (fake, folder) or one the registry does not know."""
    cls = DATASETS.get(dataset or "")
    return (getattr(cls, "primary_metric", "fid"), getattr(cls, "primary_better", "lower"))
