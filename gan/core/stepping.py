"""How the training step runs backward and optimizer steps: straight to PyTorch where Lightning's
wrappers would only dispatch hooks nobody overrides, through Lightning everywhere else.

Under manual optimization `manual_backward` and `LightningOptimizer.step` add, on one device
with a precision that keeps no grad scaler, nothing but the dispatch of `on_before_backward`,
`on_after_backward` and `on_before_optimizer_step` to every callback and the module (a string
built and a profiler context entered per callback and hook: about a third of Lightning's host
time per step in `python -m gan.bench profile=true`). Where they can matter Lightning's path is
kept: DDP (the reducer is prepared in its backward), 16-mixed (the scaler scales the loss and
unscales before the step), other precision plugins and strategies, and any callback or module
that overrides one of those hooks or `LightningModule.backward`.
"""

from __future__ import annotations

from contextlib import contextmanager

import lightning as L
import torch
from lightning.pytorch.plugins.precision import HalfPrecision, MixedPrecision, Precision
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities.model_helpers import is_overridden

HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


def direct_steps(trainer: L.Trainer, module: L.LightningModule) -> bool:
    """Whether Lightning's backward and optimizer-step wrappers would only dispatch hooks."""
    plugin = trainer.precision_plugin
    plain = type(plugin) in (Precision, HalfPrecision) or (
        type(plugin) is MixedPrecision and plugin.scaler is None)
    listened = any(is_overridden(hook, callback, L.Callback)
                   for callback in trainer.callbacks for hook in HOOKS)
    listened |= any(is_overridden(hook, module, L.LightningModule) for hook in (*HOOKS, "backward"))
    return type(trainer.strategy) is SingleDeviceStrategy and plain and not listened


def step_directly(optimizer, step) -> None:
    """`step(raw optimizer)` between the LightningOptimizer's own progress callbacks (what its
    `step` calls around the strategy), so `trainer.global_step`, `max_steps` and checkpoint
    step counts still count every optimizer step.

    Private Lightning API, kept on purpose (checked against Lightning 2.6.6): the public route,
    `optimizer.step()`, is the hook dispatch this path exists to skip, and the count it keeps
    (`optim_step_progress`, which `global_step` reads) has no public setter. In 2.6.6
    `LightningOptimizer.step` calls `_on_before_step()` and `_on_after_step()` around the
    strategy's step, and manual optimisation installs its step counting in them.
    tests/test_lightning_api.py fails, naming this site, if Lightning drops those names;
    tests/test_thin.py if the count stops matching."""
    optimizer._on_before_step()
    try:
        step(optimizer.optimizer)
    finally:
        optimizer._on_after_step()


@contextmanager
def frozen(weights: list[torch.Tensor]):
    """These weights take no gradient inside the block (D's in G's backward); each gets its
    own requires_grad back after (a trick may have frozen some for good)."""
    states = [w.requires_grad for w in weights]
    for w in weights:
        w.requires_grad_(False)
    try:
        yield
    finally:
        for w, state in zip(weights, states):
            w.requires_grad_(state)


def log_boundary(trainer: L.Trainer) -> bool:
    """Whether Lightning writes the logged values at this training batch: the steps every
    `trainer.log_every_n_steps` batches, and the last batch once `trainer.should_stop` is set.
    Call it from the training step or a training hook (on_train_start, on_train_batch_*).

    What Lightning's private `should_update_logs` (the Trainer's `_logger_connector`) answers
    in the fit loop, from public attributes (checked against Lightning 2.6.6): Lightning counts
    the batches that stepped (the epoch loop's private `_batches_that_stepped`), +1 (the batch
    under way). Under manual optimisation (ours) every batch steps, so that count is the batches
    completed, which the epoch loop's public `batch_progress` keeps and a checkpoint restores.
    Not `global_step`: D and G each step, G only every `n_critic` batches.
    tests/test_lightning_api.py checks the two agree on every batch of real runs (fresh, and
    resumed mid-epoch, after a signal and after an epoch; log_every_n_steps 1, 3, 50)."""
    every = trainer.log_every_n_steps
    if not every:
        return False
    step = trainer.fit_loop.epoch_loop.batch_progress.total.completed + 1
    return step % every == 0 or trainer.should_stop
