"""gan.sampling.grids.ClassGrid: one row per class, fixed noise per column, no-op unless
conditional."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from gan.core.module import GAN
from gan.sampling.grids import ClassGrid
from tests.conftest import FAST, TINY_MLP, compose_train, tiny_module


def module(conditional: bool, run_dir) -> GAN:
    # the data's labels (tricks=[ema]: no self-conditioning), as a labelled cGAN
    return tiny_module(compose_train([*FAST, *TINY_MLP, "seed=0", "tricks=[ema]",
                                      f"model.conditional={str(conditional).lower()}"], run_dir))


@pytest.mark.parametrize("conditional", [False, True], ids=["uncond", "cond"])
def test_class_grid(tmp_path, conditional):
    gan, grid = module(conditional, tmp_path), ClassGrid(n_per_class=3, seed=5)
    trainer = SimpleNamespace(default_root_dir=str(tmp_path), loggers=[])
    logged = []
    grid._log = lambda trainer, tag, images, filename: logged.append((tag, images, filename))
    grid._log_fixed(trainer, gan, "final.png")
    if not conditional:
        assert logged == []
        return
    [(tag, images, filename)] = logged
    assert (tag, filename) == ("samples/per_class", "per_class_final.png")
    assert images.shape == (10 * 3, 1, 28, 28)
    z = torch.randn(3, gan.latent_dim, generator=torch.Generator().manual_seed(5))
    for c in (0, 7):  # row c holds class c over the same three columns of noise
        torch.testing.assert_close(images[3 * c: 3 * c + 3], gan.sample(z, torch.full((3,), c)))


def test_class_grid_writes_png(tmp_path):
    trainer = SimpleNamespace(default_root_dir=str(tmp_path), loggers=[])
    ClassGrid(n_per_class=2)._log_fixed(trainer, module(True, tmp_path), "x.png")
    assert (tmp_path / "samples" / "per_class_x.png").is_file()
