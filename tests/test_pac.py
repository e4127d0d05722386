"""PacGAN (gan/tricks/pac.py): D built for m x channels, fed packs, scores per pack; refusals
of a batch that does not split into packs and of a conditional D."""

from __future__ import annotations

import pytest
import torch

from gan.tricks.pac import Pac
from tests.conftest import TINY_DCGAN, TINY_MLP, UNCONDITIONAL, needs_mnist, run_module, tiny_module


def test_packs_stack_consecutive_images_along_channels():
    images = torch.arange(6 * 1 * 2 * 2, dtype=torch.float).view(6, 1, 2, 2)
    packed = Pac(degree=3).d_input(images, step=0)
    assert packed.shape == (2, 3, 2, 2)
    assert torch.equal(packed[1, 2], images[5, 0])  # pack 1 holds images 3, 4, 5
    assert Pac(degree=2).d_img_shape((3, 28, 28)) == (6, 28, 28)


@pytest.mark.parametrize("net", [TINY_DCGAN, TINY_MLP], ids=["dcgan", "mlp"])
@pytest.mark.parametrize("m", [2, 4])
def test_the_critic_scores_packs(fast_cfg, net, m):
    module = tiny_module(fast_cfg(*UNCONDITIONAL, *net, "tricks=[pac]", f"tricks.pac.degree={m}"))
    real = torch.rand(16, 1, 28, 28) * 2 - 1
    scores = module.critic_in_training(real, torch.zeros(16, dtype=torch.long))
    assert scores.shape == (16 // m,)
    # the first weight layer sees m channels (dcgan: conv; mlp: m * 784 inputs)
    first = next(p for p in module.discriminator.parameters() if p.dim() > 1)
    assert first.shape[1] in (m, m * 28 * 28)


def test_pac_trains_a_step_with_r1(fast_cfg):
    """One training batch through the real step: packed reals for D, the loss and R1."""
    from gan.runs.wiring import fit

    trainer, module = fit(fast_cfg(*UNCONDITIONAL, *TINY_DCGAN, "tricks=[ema,r1,pac]",
                                   "callbacks=[]", "trainer.limit_train_batches=1"))
    assert module.d_step == 1 and module.g_step == 1
    assert torch.isfinite(trainer.callback_metrics["train/d_loss"])


@pytest.mark.parametrize("overrides,message", [
    ([*UNCONDITIONAL, "tricks=[pac]", "data.batch_size=15"],
     "data.batch_size=15 is not a multiple of tricks.pac.degree=2"),
    (["tricks=[ema,self_cond,pac]"], "D is conditional"),   # the default recipe's D
    ([*UNCONDITIONAL, "tricks=[pac]", "tricks.pac.degree=5"], "tricks.pac.degree=5"),
])
def test_pac_refuses_in_one_line(fast_cfg, overrides, message):
    from gan.io.usage import usage_error
    from gan.runs.wiring import build_module

    with pytest.raises(Exception) as err:  # Hydra wraps the ValueError; gan.train unwraps it
        build_module(fast_cfg(*TINY_DCGAN, *overrides))
    line = str(usage_error(err.value))
    assert message in line and "\n" not in line


@pytest.mark.slow
@needs_mnist
def test_pac_trains_from_the_command_line(tmp_path):
    """As typed (about 3 min on 2 busy cores): the unconditional recipe with pac exits 0."""
    run_module("gan.train", "tricks=[pac]", "recipe=unconditional", "budget=images",
               "budget.value=2000", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
               timeout=900)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
