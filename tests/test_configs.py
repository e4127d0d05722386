"""Every option of every config group composes and builds; every model x loss pair trains."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import Logger, TensorBoardLogger

from gan.io.config import CONF_DIR, build
from gan.runs.trackers import build_loggers
from gan.runs.wiring import build_module, fit

GROUPS = ["data", "model", "loss", "optim", "tricks", "trainer", "logger", "callbacks",
          "experiment"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group}/ is empty"


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_option_composes_and_builds(fast_cfg, tmp_path, group, option):
    override = f"{group}=[{option}]" if group == "tricks" else f"{group}={option}"
    if option == "folder":  # your own images: a folder with one PNG
        from PIL import Image
        (tmp_path / "imgs").mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "a.png")
        cfg = fast_cfg(override, f"data.root={tmp_path / 'imgs'}", fake_data=False)
    elif group == "experiment":  # a recipe may pick a real dataset: shrink it back to fake data
        cfg = fast_cfg(override, "data=fake", "data.n=128", fake_data=False)
    else:
        cfg = fast_cfg(override, fake_data=group != "data")
    if group == "data":
        dm = build(cfg.data)
        assert len(dm.img_shape) == 3 and dm.num_classes >= 1
    elif group == "trainer":
        trainer = build(cfg.trainer)
        assert isinstance(trainer, L.Trainer)
        assert trainer.max_epochs == cfg.trainer.max_epochs
        assert trainer.default_root_dir == str(tmp_path)  # the run dir, not ./lightning_logs
        assert trainer.num_devices == cfg.trainer.devices
    elif group == "logger":
        if option in ("mlflow", "wandb"):
            pytest.importorskip(option, reason=f"the [{option}] extra is not installed")
        (logger,) = build_loggers(cfg)
        assert isinstance(logger, Logger)
        if option == "tensorboard":
            assert isinstance(logger, TensorBoardLogger) and Path(logger.log_dir) == tmp_path
    elif group == "callbacks":
        for name, node in cfg.callbacks.items():
            callback = build(node)
            assert isinstance(callback, L.Callback), name
            assert type(callback).__name__ == node._target_.rsplit(".", 1)[-1], name
    else:  # model, loss, optim, tricks, experiment: the whole GAN builds
        module, tricks = build_module(cfg)
        assert [type(t).__name__ for t in tricks] == [
            node._target_.rsplit(".", 1)[-1] for node in (cfg.get("tricks") or {}).values()]
        opt_g, opt_d = module.configure_optimizers()
        for opt, net in ((opt_g, module.generator), (opt_d, module.discriminator)):
            assert type(opt).__name__ == cfg.optim[
                "generator" if opt is opt_g else "discriminator"]._target_.rsplit(".", 1)[-1]
            assert {id(p) for g in opt.param_groups for p in g["params"]} == {
                id(p) for p in net.parameters()}
        images = module.sample(module.fixed_z, module.fixed_labels)
        assert images.shape == (cfg.n_fixed, *build(cfg.data).img_shape)
        assert images.abs().max() <= 1


def snapshot(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in net.parameters()])


@pytest.mark.parametrize("model", options("model"))
@pytest.mark.parametrize("loss", options("loss"))
def test_model_loss_pair_trains(fast_cfg, model, loss):
    cfg = fast_cfg(f"model={model}", f"loss={loss}", "callbacks=[]",
                   "logger=tensorboard", "trainer.max_epochs=1")
    n_critic = cfg.loss.n_critic
    for net in (cfg.model.generator, cfg.model.discriminator):
        if "width" in net:  # the conv nets: narrow, same structure
            net.width = 16
    L.seed_everything(cfg.seed)  # as fit() does: the trained module starts from these weights
    before, _ = build_module(cfg)
    g0, d0 = snapshot(before.generator), snapshot(before.discriminator)
    cfg.data.n = cfg.data.batch_size * 2 * n_critic  # one epoch = two G steps
    trainer, module = fit(cfg)
    assert module.d_step == 2 * n_critic and module.g_step == 2
    for key in ("train/d_loss", "train/g_loss"):
        assert math.isfinite(float(trainer.callback_metrics[key])), key
    assert not torch.equal(g0, snapshot(module.generator)), "G did not change"
    assert not torch.equal(d0, snapshot(module.discriminator)), "D did not change"


@pytest.mark.parametrize("loss,n_critic", [("bce", 1), ("wgan", 5), ("wgan_gp", 3)])
def test_d_steps_per_g_step_is_n_critic(fast_cfg, loss, n_critic):
    """Counted on the optimizers themselves (Adam/RMSprop keep a per-parameter step)."""
    cfg = fast_cfg("model=mlp", f"loss={loss}", f"loss.n_critic={n_critic}", "callbacks=[]",
                   "trainer.limit_train_batches=6")
    trainer, module = fit(cfg)
    opt_g, opt_d = (opt.optimizer for opt in trainer.optimizers) if hasattr(
        trainer.optimizers[0], "optimizer") else trainer.optimizers
    steps = [int(next(iter(opt.state.values()))["step"]) for opt in (opt_g, opt_d)]
    assert steps == [6 // n_critic, 6]
    assert (module.g_step, module.d_step) == (6 // n_critic, 6)


def test_fit_starts_from_the_seeded_build_module_weights(fast_cfg):
    """What test_model_loss_pair_trains compares against: fit() with no training steps keeps
    exactly the weights that seeding and build_module give."""
    cfg = fast_cfg("model=mlp", "callbacks=[]", "trainer.max_steps=0")
    L.seed_everything(cfg.seed)
    before, _ = build_module(cfg)
    _, module = fit(cfg)
    assert module.d_step == 0
    assert torch.equal(snapshot(before.generator), snapshot(module.generator))
    assert torch.equal(snapshot(before.discriminator), snapshot(module.discriminator))
    L.seed_everything(cfg.seed + 1)
    other, _ = build_module(cfg)
    assert not torch.equal(snapshot(other.generator), snapshot(module.generator))


@pytest.mark.parametrize("optim", ["adam", "adamw"])
def test_the_learning_rates_typed_move_each_net_by_that_much(fast_cfg, optim):
    """optim.lr_g / optim.lr_d as typed reach the optimizers: Adam's first step moves every
    parameter by lr * g / (|g| + eps), i.e. by lr, whatever the gradient's size."""
    decay = ["optim.weight_decay=0"] if optim == "adamw" else []  # decoupled decay moves it too
    cfg = fast_cfg(f"optim={optim}", "optim.lr_g=0.0123", "optim.lr_d=0.0456", *decay)
    module, _ = build_module(cfg)
    for opt, net, lr in zip(module.configure_optimizers(), (module.generator,
                                                            module.discriminator), (0.0123, 0.0456)):
        before = [p.detach().clone() for p in net.parameters()]
        for p in net.parameters():  # |g| in [3, 6): far above Adam's eps, so the step is lr
            p.grad = torch.randn_like(p).sign() * (3 + 3 * torch.rand_like(p))
        opt.step()
        for old, p in zip(before, net.parameters()):
            step = (p.detach() - old).abs()
            assert torch.allclose(step, torch.full_like(old, lr), rtol=2e-2), (step.min(), step.max())
