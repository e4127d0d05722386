"""Nothing lost, nothing silent: the divergence guard.

- A D or G step whose loss or gradient is not finite is skipped (no weight or optimizer-state
  change) on the step it happens, and counted (`train/skipped_steps`).
- The step scalars are kept as running sums on the device. The host reads them, and the skip
  counters, once per log boundary (`trainer.log_every_n_steps`) and once per epoch (before the
  checkpoints are written): no host sync per step on an accelerator.
- `max_consecutive_skips` skips of one optimizer in a row stop the run with `Diverged`, one line
  that names what to change; `gan.train` marks status.json `diverged` and exits non-zero.
- `all_finite(checkpoint)` keeps a checkpoint with NaN/inf weights from being written at all.
- `garbage_reason(metrics)` flags final samples no one wants (FID above a ceiling, one class).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import torch

log = logging.getLogger(__name__)


ADVICE = "lower optim.lr_g / optim.lr_d, or change loss= or model="


class Diverged(RuntimeError):
    """Training cannot go on: every recent step was non-finite. The message is one line."""


def to_host(values: torch.Tensor) -> torch.Tensor:
    """The one device-to-host copy of a boundary (tests count the copies through here)."""
    return values.cpu()


def host_number(value: float) -> torch.Tensor:
    """A number to log, as a 0-dim host tensor. Lightning keeps a logged tensor where it is; a
    Python number it turns into a tensor on the module's device (a host-to-device copy, which
    waits for the device) that the progress bar then reads back (a second wait). Every value
    gan logs goes through here or `to_host` (tests count the others as syncs)."""
    return to_host(torch.tensor(float(value)))


def finite(loss: torch.Tensor, grad_norm: torch.Tensor) -> torch.Tensor:
    """One 0-dim bool tensor on the device: the loss and the gradient norm are finite. The norm
    covers every gradient: one NaN or inf entry makes it non-finite."""
    return torch.isfinite(loss).all() & torch.isfinite(grad_norm.to(loss.device)).all()


def guarded_step(optimizer, ok: torch.Tensor) -> None:
    """`optimizer.step()` if `ok`, else leave the weights and the optimizer state unchanged.

    Three ways, cheapest first:
    - fused Adam/AdamW/SGD/Adagrad read `found_inf`, the flag torch.amp.GradScaler hands them,
      and skip the update (and undo their step count) inside the kernel: no sync, no copy.
      (Under 16-mixed Lightning's GradScaler sets `found_inf` itself and skips non-finite
      gradients the same way.)
    - on the CPU, reading the flag is free (there is no queue to wait for): step or not.
    - other optimizers on an accelerator: step, then put back the old weights and state with
      `torch.where(ok, new, old)`, all on the device. It costs one copy of the parameters and
      the optimizer state per step; fused=true avoids it. State entries the optimizer creates
      on its first step start from zeros when that step is skipped; step counters the
      optimizer keeps on the host (non-capturable Adam) count a skipped step too.
    """
    inner = getattr(optimizer, "optimizer", optimizer)  # under Lightning's LightningOptimizer
    if getattr(inner, "_step_supports_amp_scaling", False):
        inner.found_inf = (~ok).float()
        try:
            optimizer.step()
        finally:  # GradScaler deletes its own; do not leave ours for the next step
            inner.__dict__.pop("found_inf", None)
    elif ok.device.type == "cpu":
        if ok.item():
            optimizer.step()
    else:
        _step_then_restore(optimizer, inner, ok)


def _device_state(inner, device) -> dict[int, dict]:
    return {id(p): {k: v for k, v in state.items() if torch.is_tensor(v) and v.device == device}
            for p, state in inner.state.items()}


def _step_then_restore(optimizer, inner, ok: torch.Tensor) -> None:
    params = [p for group in inner.param_groups for p in group["params"]]
    old_params = [p.detach().clone() for p in params]
    old_state = {k: {n: v.clone() for n, v in s.items()}
                 for k, s in _device_state(inner, ok.device).items()}
    optimizer.step()
    with torch.no_grad():
        for p, old in zip(params, old_params):
            p.copy_(torch.where(ok, p, old))
        for key, state in _device_state(inner, ok.device).items():
            for name, value in state.items():
                old = old_state.get(key, {}).get(name)
                value.copy_(torch.where(ok, value, old if old is not None else 0))


FOLD_EVERY = 256  # steps a group's window holds as a list before it is summed (memory bound)


class StepGuard:
    """Per-step scalars and skip counters, on the device until a boundary reads them.

    `record(group, ok, values)` after each D ("d") or G ("g") step; `read()` at a log boundary
    returns the window's means over the finite steps (NaN if every step was skipped), the
    skipped steps so far and resets the window; `check()` raises `Diverged` after
    `max_consecutive_skips` skips of one optimizer in a row. Each is one host transfer.

    A step costs no device op here: `record` keeps the step's flag and (detached) values in a
    list, and the sums, counts and runs of skips are computed for the whole window at once
    when it is read (or every FOLD_EVERY steps). A value may be a batch (its mean is logged,
    e.g. D's outputs) or a Python number (e.g. a loss without a penalty returns 0.0).
    """

    def __init__(self, max_consecutive_skips: int = 20):
        if not isinstance(max_consecutive_skips, int) or max_consecutive_skips < 1:
            raise ValueError(
                f"guard.max_consecutive_skips must be an integer >= 1, got {max_consecutive_skips}")
        self.max_consecutive_skips = max_consecutive_skips
        self.skipped_steps = 0  # read so far (host)
        self._steps: dict[str, list] = {}  # (ok, values) per step not yet folded, per group
        self._names: dict[str, tuple[str, ...]] = {}
        self._reset_window()
        self._run: dict[str, torch.Tensor] = {}  # consecutive skips now, per group
        self._worst: dict[str, torch.Tensor] = {}  # longest run since the last check

    def _reset_window(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._groups: dict[str, str] = {}
        self._good: dict[str, torch.Tensor] = {}  # finite steps in the window, per group
        self._skipped: dict[str, torch.Tensor] = {}  # skipped steps in the window, per group

    def record(self, group: str, ok: torch.Tensor, values: Mapping[str, torch.Tensor]) -> None:
        names = tuple(values)
        if self._names.get(group, names) != names:
            self._fold(group)
        self._names[group] = names
        steps = self._steps.setdefault(group, [])
        steps.append((ok, [v.detach() if torch.is_tensor(v) and v.requires_grad else v
                           for v in values.values()]))
        if len(steps) >= FOLD_EVERY:
            self._fold(group)

    def _fold(self, group: str) -> None:
        """The group's listed steps into the window's sums and counts: a few ops in all."""
        steps = self._steps.pop(group, None)
        if not steps:
            return
        ok = torch.stack([flag for flag, _ in steps])
        for i, name in enumerate(self._names[group]):
            per_step = _per_step([values[i] for _, values in steps], ok.device)
            total = torch.where(ok, per_step, 0.0).sum()  # skipped steps' NaN stay out
            self._sums[name] = self._sums[name] + total if name in self._sums else total
            self._groups[name] = group
        bad = ~ok
        runs = _skip_runs(bad, self._run.get(group))
        self._run[group] = runs[-1]
        worst = runs.max()
        self._worst[group] = torch.maximum(self._worst[group], worst) \
            if group in self._worst else worst
        for counts, flags in ((self._good, ok), (self._skipped, bad)):
            counts[group] = counts.get(group, 0) + flags.sum()

    def _fold_all(self) -> None:
        for group in list(self._steps):
            self._fold(group)

    def read(self) -> dict[str, torch.Tensor]:
        """Window means, `skipped_steps` (total) and the divergence check, in one transfer.
        The values are 0-dim host tensors: turning them into numbers costs no sync."""
        self._fold_all()
        names, groups = list(self._sums), sorted(self._good)
        if not groups:
            return {}
        packed = torch.stack(
            [self._sums[n].double() for n in names]
            + [self._good[g].double() for g in groups]
            + [self._skipped[g].double() for g in groups]
            + [self._worst[g].double() for g in groups])
        host = to_host(packed)
        k, m = len(names), len(groups)
        good = dict(zip(groups, host[k: k + m]))
        self.skipped_steps += int(host[k + m: k + 2 * m].sum())
        # 0 / 0 = NaN: every step of the window was skipped
        out = {n: (host[i] / good[self._groups[n]]).float() for i, n in enumerate(names)}
        out["skipped_steps"] = host.new_tensor(float(self.skipped_steps)).float()
        worst = dict(zip(groups, host[k + 2 * m:].tolist()))
        self._reset_window()
        self._raise_if_diverged(worst)
        return out

    def total_skipped(self) -> int:
        """Skipped steps so far, the unread window included (one host read: for checkpoints)."""
        self._fold_all()
        window = sum(int(v) for v in self._skipped.values())
        return self.skipped_steps + window

    def check(self) -> None:
        """The divergence check alone (the window's sums stay for the next `read`)."""
        self._fold_all()
        groups = sorted(self._worst)
        if groups:
            worst = to_host(torch.stack([self._worst[g] for g in groups])).tolist()
            self._raise_if_diverged(dict(zip(groups, worst)))

    def _raise_if_diverged(self, worst: Mapping[str, float]) -> None:
        for group, run in worst.items():
            self._worst[group] = self._run[group]  # the next window starts from the current run
            if run >= self.max_consecutive_skips:
                net = {"d": "D", "g": "G"}.get(group, group)
                raise Diverged(
                    f"training diverged: {int(run)} {net} steps in a row had a non-finite loss "
                    f"or gradient (guard.max_consecutive_skips={self.max_consecutive_skips}); "
                    f"{ADVICE}")


def _per_step(values: list, device: torch.device) -> torch.Tensor:
    """One float64 value per step: a tensor's mean (a 0-dim tensor is itself), or the number."""
    if all(not torch.is_tensor(v) for v in values) and len(set(values)) == 1:
        return torch.full((len(values),), float(values[0]), dtype=torch.float64, device=device)
    if all(torch.is_tensor(v) for v in values) and len({v.shape for v in values}) == 1:
        stacked = torch.stack(values).double()
        return stacked.flatten(1).mean(1) if stacked.dim() > 1 else stacked
    return torch.stack([v.double().mean() if torch.is_tensor(v) else
                        torch.full((), float(v), dtype=torch.float64, device=device)
                        for v in values])


def _skip_runs(bad: torch.Tensor, carried: torch.Tensor | None) -> torch.Tensor:
    """Per step, the consecutive skips ending there (0 after a finite step), continuing the
    run `carried` in from earlier steps: on the device, for a whole window at once."""
    index = torch.arange(len(bad), device=bad.device)
    last_good = torch.cummax(torch.where(bad, -1, index), 0).values  # -1: none yet
    runs = index - last_good
    if carried is not None:
        runs = runs + torch.where(last_good < 0, carried, 0)
    return runs


def garbage_reason(metrics: Mapping[str, float], max_fid: float | None = None,
                   min_classes_covered: float | None = None) -> str | None:
    """Why the final samples are not worth having ("; "-joined), or None. Keys as in
    metrics.json (`val/fid`, `val/classes_covered`); an empty dict: the samples could not be
    scored (they were not finite)."""
    if not metrics:
        return "final samples could not be scored (not finite)"
    fid = metrics.get("val/fid", metrics.get("fid"))
    classes = metrics.get("val/classes_covered", metrics.get("classes_covered"))
    reasons = []
    if fid is not None and not math.isfinite(fid):
        reasons.append(f"final FID is {fid}")
    elif max_fid is not None and fid is not None and fid > max_fid:
        reasons.append(f"final FID {fid:.4g} > guard.max_fid={max_fid:g}")
    if min_classes_covered is not None and classes is not None and classes < min_classes_covered:
        reasons.append(f"final samples cover {classes:g} class(es) < "
                       f"guard.min_classes_covered={min_classes_covered:g} (mode collapse)")
    return "; ".join(reasons) or None
