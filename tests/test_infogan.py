"""tricks=[info] (gan/tricks/info.py): InfoGAN as its paper builds it, checked against its
formula (Q a head on D's trunk, the information term in D's and G's losses), where each step's
gradient goes, its optimizers, its refusals, checkpoints of the old design, and a short fit in
which D's trunk and Q's head learn to read the code back from G's images."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from torch import nn

from gan.core.stepping import frozen
from gan.io.checkpoint import CheckpointError, check_fits
from gan.io.usage import UsageError
from gan.networks import mlp
from gan.runs.wiring import build_module, fit
from gan.tricks.info import CodeHead, InfoGAN
from tests.conftest import FAST, compose_train

TINY = ["tricks=[ema,info]", "model.generator.conditional=true", "model.latent_dim=8",
        "model.generator.width=4", "model.discriminator.width=4", "tricks.info.hidden=8"]


def wired(cfg):
    torch.manual_seed(0)
    module, tricks = build_module(cfg)
    for trick in tricks:
        trick.setup(None, module, "fit")
    module.setup("fit")
    return module, next(t for t in tricks if isinstance(t, InfoGAN))


def q_logits(module, images):
    """Q by hand: the head on D's flattened conv features."""
    return module.trick_state['info'](module.discriminator.features(images).flatten(1))


def code_accuracy(module, n: int = 512) -> float:
    """How often Q reads back the code G was given (chance: 1/10)."""
    module.eval()
    with torch.no_grad():
        codes = torch.arange(n) % 10
        fake = module.generator(torch.randn(n, module.latent_dim), codes)
        return (q_logits(module, fake).argmax(1) == codes).float().mean().item()


def grads(net: nn.Module) -> float:
    return sum(p.grad.abs().sum().item() for p in net.parameters() if p.grad is not None)


def test_codes_are_uniform_and_ignore_the_real_labels(fast_cfg):
    _, info = wired(fast_cfg(*TINY))
    labels = torch.full((20_000,), 3)
    codes = info.generator_labels(labels)
    assert codes.shape == labels.shape and codes.dtype == torch.int64
    counts = torch.bincount(codes, minlength=10)
    assert len(counts) == 10
    # 2,000 expected per code; 5 standard deviations is about 212.
    assert counts.min() > 1_780 and counts.max() < 2_220
    assert info.drawn is codes  # what D's step reads the term against


def test_q_is_the_papers_head_on_ds_trunk(fast_cfg):
    module, info = wired(fast_cfg(*TINY))
    assert info.trunk is module.discriminator.features  # shared, not a copy
    layers = list(module.trick_state['info'].net)
    assert [type(m) for m in layers] == [nn.Linear, nn.BatchNorm1d, nn.LeakyReLU, nn.Linear]
    # 28x28 through two stride-2 convs of widths 4, 8: 8 * 7 * 7 features; hidden 8; K = 10
    assert (layers[0].in_features, layers[0].out_features, layers[3].out_features) == (392, 8, 10)
    assert layers[2].negative_slope == 0.1
    assert CodeHead(392, 10).net[0].out_features == 128  # the paper's FC 128 by default


def test_both_penalties_are_weighted_cross_entropy_of_q_on_the_code(fast_cfg):
    module, info = wired(fast_cfg(*TINY, "tricks.info.weight=0.5"))
    codes = info.generator_labels(torch.zeros(6, dtype=torch.long))
    fake = module.generator(torch.randn(6, 8), codes)
    logits = q_logits(module, fake)
    by_hand = -0.5 * torch.log_softmax(logits, 1)[torch.arange(6), codes].mean()
    assert logits.shape == (6, 10)
    d_term = info.d_penalty(module.critic, None, fake.detach(), step=0)
    g_term = info.g_penalty(fake, codes, step=0)
    assert d_term.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert g_term.item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_d_step_term_trains_trunk_and_head_and_g_step_term_trains_g_alone(fast_cfg):
    module, info = wired(fast_cfg(*TINY))
    opt_g, opt_d = module.configure_optimizers()
    codes = info.generator_labels(torch.zeros(8, dtype=torch.long))
    fake = module.generator(torch.randn(8, 8), codes)
    # D's step, as the training step runs it: the term on the detached fakes.
    info.d_penalty(module.critic, None, fake.detach(), step=0).backward()
    assert grads(module.trick_state['info']) > 0 and grads(module.discriminator.features) > 0
    assert grads(module.generator) == 0
    assert module.discriminator.head.weight.grad is None  # D's real/fake logit is not Q's
    module.zero_grad(set_to_none=True)
    # G's step: opt_d's weights (D's and Q's head) frozen, as module.training_step does.
    with frozen([p for group in opt_d.param_groups for p in group["params"]]):
        info.g_penalty(fake, codes, step=0).backward()
    assert grads(module.generator) > 0
    assert grads(module.trick_state['info']) == 0 and grads(module.discriminator) == 0


def test_qs_head_is_in_ds_optimizer_and_not_gs(fast_cfg):
    module, _ = wired(fast_cfg(*TINY))
    opt_g, opt_d = module.configure_optimizers()
    held_g = {id(p) for g in opt_g.param_groups for p in g["params"]}
    held_d = {id(p) for g in opt_d.param_groups for p in g["params"]}
    head = {id(p) for p in module.trick_state['info'].parameters()}
    assert head and head <= held_d and not head & held_g
    assert {id(p) for p in module.discriminator.parameters()} <= held_d
    assert held_g == {id(p) for p in module.generator.parameters()}


class StepGrads(L.Callback):
    """Before each optimizer step: whose gradients the training step left, per optimizer."""

    def __init__(self):
        self.seen = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        role = "d" if optimizer is trainer.optimizers[1] else "g"
        self.seen.append((role, {name: [None if p.grad is None else p.grad.clone()
                                        for p in part.parameters()]
                                 for name, part in (("generator", pl_module.generator),
                                                    ("discriminator", pl_module.discriminator),
                                                    ("q_head", pl_module.trick_state["info"]))}))


def test_the_training_step_gives_each_step_its_gradients(fast_cfg):
    # One real training step: D's step moves D and Q's head (G untouched); G's step adds
    # nothing to D's or Q's gradients (frozen with opt_d's weights).
    probe = StepGrads()
    fit(fast_cfg(*TINY, "trainer.limit_train_batches=1", "callbacks=[]"),
        callbacks=[probe])
    (d_role, d), (g_role, g) = probe.seen
    assert (d_role, g_role) == ("d", "g")
    assert all(t is None for t in d["generator"])
    assert all(t is not None and t.abs().sum() > 0 for t in d["q_head"])
    assert all(t is not None and t.abs().sum() > 0 for t in g["generator"])
    for name in ("discriminator", "q_head"):  # unchanged since D's step
        assert all(torch.equal(a, b) for a, b in zip(d[name], g[name]))


class TrunklessD(mlp.Discriminator):
    trunk = None  # as a user's own class without the method


@pytest.mark.parametrize("overrides, key", [
    ([*TINY[2:], "tricks=[info]"], "model.generator.conditional=true"),
    ([*TINY[2:], "tricks=[info]", "model.conditional=true"],
     "model.discriminator.conditional=false"),
    # a user's own D without a feature trunk (`trunk()`) for Q's head
    (["tricks=[info]", "model.generator.conditional=true", "model=mlp",
      "model.discriminator._target_=tests.test_infogan.TrunklessD"], "does not have"),
])
def test_refuses_what_infogan_cannot_use(fast_cfg, overrides, key):
    cfg = fast_cfg(*overrides)
    with pytest.raises(ValueError, match=key) as err:
        wired(cfg)
    assert "\n" not in str(err.value)


def test_refuses_a_nonpositive_weight():
    with pytest.raises(ValueError, match="weight > 0"):
        InfoGAN(weight=0.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """24 steps at the paper's betas, both nets at lr 1e-3 (the test's haste), the `last`
    checkpoint its only callback: the config, Q's accuracy before, the trained module."""
    others = [f"callbacks.{name}=null" for name in ("periodic", "best", "metrics", "samples",
                                                     "per_class", "hparams", "interpolation")]
    cfg = compose_train([*FAST, *TINY, *others, "trainer.max_epochs=3", "optim.lr_g=1e-3",
                         "optim.lr_d=1e-3", "optim.betas=[0.5,0.999]"],
                        tmp_path_factory.mktemp("info_run"))
    GlobalHydra.instance().clear()
    torch.manual_seed(0)
    before, _ = wired(cfg)
    _, module = fit(cfg)
    return cfg, code_accuracy(before), module


def test_a_short_fit_teaches_q_the_code_and_checkpoints_the_head(trained):
    # Q learns only through D's optimizer (its head and D's trunk): an untrained Q reads the
    # code at chance (0.1; 512 draws: one standard deviation 0.013), a trained one far above it.
    cfg, chance_level, module = trained
    learned = code_accuracy(module)
    assert chance_level < 0.2
    assert learned > 0.3, f"Q reads the code back {learned:.2f} of the time after training"
    state = torch.load(cfg.hydra.runtime.output_dir + "/checkpoints/last.ckpt",
                       weights_only=True)["state_dict"]
    assert any(k.startswith("trick_state.info.") for k in state)
    assert not any(k.startswith("code_predictor.") for k in state)


def test_a_checkpoint_of_the_separate_q_design_is_refused_in_one_line(trained, fast_cfg):
    cfg, _, module = trained
    old = torch.load(cfg.hydra.runtime.output_dir + "/checkpoints/last.ckpt", weights_only=True)
    # The old design: no head on D's trunk, a separate Q net trained by G's optimizer.
    old["state_dict"] = {k: v for k, v in old["state_dict"].items()
                         if not k.startswith("trick_state.info.")}
    old["state_dict"]["code_predictor.head.weight"] = torch.zeros(10, 392)
    old_path = cfg.hydra.runtime.output_dir + "/old_design.ckpt"
    torch.save(old, old_path)
    with pytest.raises(CheckpointError, match="separate Q net") as err:
        check_fits(old, module.state_dict(), {}, old_path)
    assert "\n" not in str(err.value) and "start a new run" in str(err.value)
    # A resume says so first, before the config keys that differ.
    with pytest.raises(UsageError, match="separate Q net"):
        fit(fast_cfg(*TINY, "callbacks=[]", f"ckpt_path={old_path}"))
