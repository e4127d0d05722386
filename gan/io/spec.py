"""What an image model makes: `ImageSpec` (channels, height, width) and the labels it is
conditioned on (`LabelSpace`).

The data module declares the spec of its images; the model is built for a spec and reports
its own (a self-conditioned model's labels are its clusters, not the data's classes). Every
consumer (metrics, grids, walks, `gan.generate`, `gan.evaluate`, `gan.export`) reads shapes and
labels from here, never from a network's attributes. Stored as a plain dict in checkpoints and
metrics.json (`to_dict` / `from_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LABEL_KINDS = ("none", "classes", "clusters")


@dataclass(frozen=True)
class LabelSpace:
    """The labels a model is conditioned on: `none`; the data's `k` `classes`; or `k`
    pseudo-class `clusters` with their `prior` (the clusters' data frequencies)."""

    kind: str = "none"
    k: int = 0
    prior: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.kind not in LABEL_KINDS:
            raise ValueError(f"label kind {self.kind!r}: use one of {', '.join(LABEL_KINDS)}")
        if self.kind != "none" and self.k < 1:
            raise ValueError(f"{self.kind} labels need k >= 1, got {self.k}")
        if self.prior is not None and len(self.prior) != self.k:
            raise ValueError(f"a label prior needs {self.k} entries, got {len(self.prior)}")

    @property
    def conditional(self) -> bool:
        return self.kind != "none"

    def cycled(self, n: int) -> torch.Tensor:
        """0, 1, ..., k-1, 0, ...: every label in turn (grids; class-conditional metrics score
        a generator against exactly these). Zeros when there are no labels."""
        return torch.arange(n) % max(self.k, 1)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """The labels a model is drawn with when none is asked for: cycled classes, or n
        seeded draws at the clusters' data frequency (clusters are unequal and are not classes:
        cycling them would skew the samples)."""
        if self.kind != "clusters" or self.prior is None:
            return self.cycled(n)
        g = torch.Generator().manual_seed(seed)
        return torch.multinomial(torch.tensor(self.prior, dtype=torch.float64), n,
                                 replacement=True, generator=g)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "k": self.k,
                **({"prior": list(self.prior)} if self.prior is not None else {})}


@dataclass(frozen=True)
class ImageSpec:
    """Images of `channels` x `height` x `width` in [-1, 1], conditioned on `labels`."""

    channels: int
    height: int
    width: int
    labels: LabelSpace = LabelSpace()

    def __post_init__(self):
        if min(self.channels, self.height, self.width) < 1:
            raise ValueError(f"an image shape needs positive sizes, got {self.shape}")

    @classmethod
    def of(cls, shape, labels: LabelSpace | None = None) -> ImageSpec:
        c, h, w = (int(s) for s in shape)
        return cls(c, h, w, labels or LabelSpace())

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    @property
    def shape_text(self) -> str:
        return "x".join(map(str, self.shape))

    def with_labels(self, labels: LabelSpace) -> ImageSpec:
        return ImageSpec(self.channels, self.height, self.width, labels)

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "labels": self.labels.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> ImageSpec:
        labels = d.get("labels") or {}
        prior = labels.get("prior")
        return cls.of(d["shape"], LabelSpace(labels.get("kind", "none"), labels.get("k", 0),
                                             tuple(prior) if prior is not None else None))
