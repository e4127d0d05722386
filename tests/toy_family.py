"""A second model family in one file: a Gaussian over pixels (each pixel's mean and spread, fitted
to the data). No edit outside this file gives it metrics, grids, walks, generate, evaluate and
export: it keeps the ImageModel contract (gan/io/image_model.py), and its checkpoints name it as
their family."""

import lightning as L
import torch
from torch import nn

from gan.io.image_model import CKPT_KEY, stamp
from gan.io.spec import ImageSpec

FAMILY = "tests.toy_family:PixelGaussian.from_checkpoint"


class Pixels(nn.Module):
    """(z, labels) -> mean + std * z, z of one value per pixel: the exportable sampler."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)
        self.register_buffer("mean", torch.zeros(self.shape))
        self.register_buffer("std", torch.ones(self.shape))

    def forward(self, z, labels=None):
        return (self.mean + self.std * z.view(-1, *self.shape)).clamp(-1, 1)


class PixelGaussian(L.LightningModule):
    def __init__(self, shape=(1, 28, 28)):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.pixels, self.seen = Pixels(shape), 0
        self.latent_dim = self.pixels.mean.numel()

    spec = property(lambda self: ImageSpec.of(self.pixels.shape))

    def training_step(self, batch, batch_idx):  # a running mean of each pixel's moments
        x = batch[0].float()
        w = len(x) / (self.seen + len(x))
        self.pixels.mean.lerp_(x.mean(0), w)
        self.pixels.std.copy_((self.pixels.std.lerp(x.std(0), w)).clamp(min=1e-3))
        self.seen += len(x)

    def configure_optimizers(self):
        return None

    def decode(self, z, labels=None):
        return self.pixels(z.to(self.device)).cpu()

    def draw(self, n, labels=None, seed=0):
        g = torch.Generator().manual_seed(seed)
        return self.decode(torch.randn(n, self.latent_dim, generator=g))

    def describe(self):
        return {"family": "pixel_gaussian", "step": self.seen}

    def export_module(self):
        return self.pixels

    def on_save_checkpoint(self, checkpoint):
        checkpoint[CKPT_KEY] = stamp(self, FAMILY)

    @classmethod
    def from_checkpoint(cls, ckpt, path, device="cpu"):
        model = cls(tuple(ckpt["hyper_parameters"]["shape"]))
        model.load_state_dict(ckpt["state_dict"])
        return model.to(device).eval()
