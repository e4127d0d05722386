"""The thin loop (issue 20): what Lightning still does per batch, and what it no longer pays for.
Direct backward and optimizer steps where nobody listens (Lightning's path where someone does),
D frozen only in G's backward, per-batch hooks nobody overrides not dispatched, the progress bar
updated at log boundaries, and EMA in one foreach call."""

from __future__ import annotations

import collections

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar

from gan.runs.thin import PER_BATCH, RichBoundaryBar, idle_hooks_off
from gan.runs.wiring import build_module, fit
from gan.tricks.ema import EMA

TINY = ["model=mlp", "model.latent_dim=8", "model.generator.hidden=[16]",
        "model.discriminator.hidden=[16]", "data.n=320", "trainer.log_every_n_steps=5"]


class Listener(L.Callback):
    """A user's callback that listens to the hooks around backward and the optimizer step."""

    def __init__(self):
        self.calls = collections.Counter()

    def on_before_backward(self, trainer, pl_module, loss):
        self.calls["before_backward"] += 1

    def on_after_backward(self, trainer, pl_module):
        self.calls["after_backward"] += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.calls["before_optimizer_step"] += 1


def test_direct_steps_count_every_optimizer_step(fast_cfg):
    trainer, module = fit(fast_cfg(*TINY, "loss=wgan", "tricks=[ema]"))  # n_critic=5
    assert module._direct  # one device, fp32, nobody listens: straight to PyTorch
    assert module.d_step == 20 and module.g_step == 4
    # trainer.global_step (max_steps, checkpoint step counts) still counts G's and D's steps
    assert trainer.global_step == module.d_step + module.g_step


def test_a_listening_callback_gets_lightnings_path_and_every_hook(fast_cfg):
    listener = Listener()
    trainer, module = fit(fast_cfg(*TINY, "trainer.limit_train_batches=6"), callbacks=[listener])
    assert not module._direct
    steps = module.d_step + module.g_step
    assert steps == 12 and trainer.global_step == steps
    assert listener.calls == {"before_backward": steps, "after_backward": steps,
                              "before_optimizer_step": steps}


def test_max_steps_stops_the_direct_loop(fast_cfg):
    trainer, module = fit(fast_cfg(*TINY, "trainer.max_steps=8"))
    assert module._direct and trainer.global_step == 8 and module.d_step == 4


@pytest.mark.parametrize("loss", ["bce", "wgan"])
def test_gradients_flow_only_where_the_math_needs_them(fast_cfg, loss):
    """Per batch D's weights get one gradient (its own step: G's loss leaves them frozen) and
    G's one per G step (D's losses see G only through detached fakes)."""
    cfg = fast_cfg(*TINY, f"loss={loss}", "trainer.limit_train_batches=5", "tricks=[]")
    computed = collections.Counter()

    class Hooked(L.Callback):
        def on_train_start(self, trainer, pl_module):
            for net in ("generator", "discriminator"):
                for p in getattr(pl_module, net).parameters():
                    p.register_hook(lambda grad, net=net: computed.update([net]))

    _, module = fit(cfg, callbacks=[Hooked()])
    n_d = len(list(module.discriminator.parameters()))
    n_g = len(list(module.generator.parameters()))
    assert computed["discriminator"] == module.d_step * n_d
    assert computed["generator"] == module.g_step * n_g
    # D's weights are trainable again after G's step
    assert all(p.requires_grad for p in module.discriminator.parameters())


def test_idle_per_batch_hooks_are_not_dispatched(fast_cfg, monkeypatch):
    class Busy(L.Callback):
        def on_train_batch_end(self, *args):
            pass

    busy, idle = Busy(), L.Callback()
    idle_hooks_off([busy, idle])
    assert callable(busy.on_train_batch_end) and busy.on_train_batch_start is None
    assert all(getattr(idle, hook) is None for hook in PER_BATCH)
    assert callable(idle.on_train_epoch_end)  # per-epoch hooks are untouched

    # In a run: Lightning calls each per-batch hook only on callbacks that override it.
    calls, training = collections.Counter(), []
    original = L.Callback.__getattribute__

    def counting(self, name):
        value = original(self, name)
        if training and name in PER_BATCH and callable(value):
            calls[type(self).__name__, name] += 1
        return value

    class Start(L.Callback):
        def on_train_start(self, trainer, pl_module):
            training.append(True)

    monkeypatch.setattr(L.Callback, "__getattribute__", counting)
    fit(fast_cfg(*TINY, "trainer.limit_train_batches=4"), callbacks=[Start()])
    monkeypatch.undo()
    assert calls["ModelCheckpoint", "on_train_batch_end"] == 3 * 4  # it overrides it: kept
    assert calls["EMA", "on_train_batch_end"] == 4
    assert not any(name == "on_before_backward" for _, name in calls), calls
    assert not any(cls in ("HParams", "Start") for cls, _ in calls), calls  # nothing per batch


def test_the_progress_bar_updates_at_log_boundaries(fast_cfg, monkeypatch):
    updates = []
    monkeypatch.setattr(RichProgressBar, "on_train_batch_end",
                        lambda self, trainer, pl_module, outputs, batch, batch_idx:
                        updates.append(batch_idx + 1))
    trainer, _ = fit(fast_cfg(*TINY, "trainer.enable_progress_bar=true",
                              "trainer.limit_train_batches=12"))
    assert isinstance(trainer.progress_bar_callback, RichBoundaryBar)
    assert trainer.progress_bar_callback.refresh_rate == 2
    assert updates == [5, 10, 12]  # every log_every_n_steps batches, and the epoch's last


def test_ema_updates_in_one_foreach_call_and_follows_moved_buffers(fast_cfg, monkeypatch):
    module, _ = build_module(fast_cfg("model=dcgan", "model.generator.width=8",
                                      "model.discriminator.width=8"))
    ema = EMA(decay=0.5)
    module.trick_state["ema"] = ema.build_state(module)  # a submodule: module.to() moves it
    ema.bind_state(module.trick_state["ema"])
    lerps = []
    original = torch._foreach_lerp_
    monkeypatch.setattr(torch, "_foreach_lerp_",
                        lambda *args: lerps.append(len(args[0])) or original(*args))
    G = module.generator
    before = [p.detach().clone() for p in ema.ema.parameters()]
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
    ema.update(G, 0.5)
    assert lerps == [len(list(G.parameters()))]  # one call for every weight
    for old, new, g in zip(before, ema.ema.parameters(), G.parameters()):
        torch.testing.assert_close(new, 0.5 * old + 0.5 * g)
    # Module.to() replaces buffer tensors: the next update copies G's current buffers.
    module.double()
    next(b for n, b in G.named_buffers() if n.endswith("running_mean")).fill_(3.0)
    ema.update(G, 0.5)
    for (name, b), e in zip(G.named_buffers(), ema.ema.buffers()):
        assert torch.equal(b, e), name
    assert all(p.dtype == torch.float64 for p in ema.ema.parameters())


def test_a_time_budget_under_ddp_agrees_at_log_boundaries_only(monkeypatch):
    """budget=time on several ranks: no pickled broadcast per batch; one all-reduced flag at
    each log boundary, and any rank out of time stops every rank."""
    from types import SimpleNamespace

    from gan.runs import budget as budget_module

    calls = []
    strategy = SimpleNamespace(
        broadcast=lambda *a, **k: calls.append("broadcast"),
        reduce_boolean_decision=lambda flag, all=True: calls.append(("reduce", flag, all)) or flag)
    boundary = SimpleNamespace(now=False)
    monkeypatch.setattr(budget_module, "log_boundary", lambda trainer: boundary.now)
    trainer = SimpleNamespace(world_size=2, strategy=strategy)
    budget = budget_module.Budget("time", 10.0)
    budget.train_s = lambda: 11.0  # this rank is out of time
    assert [budget._reached(trainer, None) for _ in range(5)] == [False] * 5
    assert calls == []  # between boundaries: nothing crosses ranks
    boundary.now = True
    assert budget._reached(trainer, None) is True
    assert calls == [("reduce", True, False)]
