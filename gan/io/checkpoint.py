"""The one place that knows the checkpoint format: loading, validation, errors, prefixes, writes.

A gan.train checkpoint is Lightning's dict (`state_dict`, `optimizer_states`, `loops`,
`callbacks`, `hyper_parameters` ...) plus `gan_counters` and `rng_states` (gan/runs/resume.py). Its
`state_dict` holds the module's children under their names:

- `generator.` and `discriminator.`: the nets;
- `generator_ema.`: the averaged G of tricks=[ema] (what sampling uses when present);
- `spectral_norm.`: the exact parametrisation state of spectrally normalised layers, beside a
  plain `weight` (gan/tricks/spectral_norm.py), so a net rebuilt without the trick still loads.

Every reader (resume through Lightning, gan.generate/evaluate through Sampler, init_from) loads
through `load_checkpoint`, so a bad file gets the same one-line error everywhere. Files are read
with `weights_only=True`: a checkpoint holds only tensors and plain containers, so loading one
never runs pickled code.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from gan.io.files import atomic_write, sniff
from gan.io.legacy import RETIRED, upgrade
from gan.io.usage import UsageError

log = logging.getLogger(__name__)


GENERATOR, DISCRIMINATOR, EMA = "generator.", "discriminator.", "trick_state.ema."

# Trick state kept as GAN attributes before the trick contract (2026-12-07) -> its home under
# `trick_state.<trick>` now. Old checkpoints are mapped on load, so they resume and sample.
OLD_TRICK_STATE = {
    "generator_ema.": "trick_state.ema.",
    "cluster_encoder.": "trick_state.self_cond.encoder.",
    "cluster_centres": "trick_state.self_cond.centres",
    "label_prior": "trick_state.self_cond.prior",
    "q_head.": "trick_state.info.",
}


def upgrade_state_dict(state_dict: dict) -> dict:
    """Rename, in place, the keys of trick state stored before the trick contract."""
    for key in list(state_dict):
        for old, new in OLD_TRICK_STATE.items():
            if key.startswith(old) and (old.endswith(".") or key == old):
                state_dict[new + key[len(old):]] = state_dict.pop(key)
                break
    return state_dict


STASH = "spectral_norm."  # prefix of the exact spectral-norm parametrisation state
# Config keys that fix the nets' shapes: a difference in one explains weights that do not fit.
MODEL_KEYS = ("model.", "data._target_", "data.img_shape", "data.num_classes")


class CheckpointError(UsageError):
    """A checkpoint that cannot be used, with a one-line reason that names the key to change
    (bad input: gan.train prints it as its one line)."""


def load_checkpoint(path: str | os.PathLike, key: str = "ckpt_path") -> dict:
    """The checkpoint at `path` (on the CPU), or a CheckpointError naming `key` (the config key
    that gave the path) when the file is missing, truncated, not a torch file, or not written by
    gan.train."""
    path = checkpoint_file(path, key)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError,
            ValueError, TypeError, AttributeError, ImportError, KeyError, IndexError) as err:
        # Never repeat torch's advice to retry with weights_only=False: that would run whatever
        # code the file holds. A gan.train checkpoint always loads with weights_only=True.
        raise CheckpointError(
            f"{key}={path} is not a readable gan.train checkpoint ({_reason(err)}); "
            f"it may be truncated by a kill or a full disk: use another checkpoint of the run "
            f"(checkpoints/epoch*.ckpt) or start without {key}=") from None
    # A GAN's (gan.train's) checkpoint carries its config; another model family names itself
    # (gan.io.image_model), and its loader reads what it wrote.
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or (
            "config" not in ckpt.get("hyper_parameters", {}) and "image_model" not in ckpt):
        raise CheckpointError(f"{key}={path} is a torch file but not a checkpoint written by "
                              f"gan.train (no state_dict and config inside)")
    if "config" in ckpt.get("hyper_parameters", {}):
        # Configs stored before the layered packages name classes by their old paths; trick
        # state stored before the trick contract sat on the GAN itself.
        ckpt["hyper_parameters"]["config"] = upgrade(ckpt["hyper_parameters"]["config"])
        upgrade_state_dict(ckpt["state_dict"])
    return ckpt


def checkpoint_file(path: str | os.PathLike, key: str = "ckpt_path",
                    what: str = "checkpoint") -> Path:
    """`path` when it is a file that could be a torch file, else a one-line error naming `key`
    and what the file is instead (missing, a directory, empty, text, an image ...)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{key}={path} is a directory, not a {what} file"
                              + (" (a run's are in <run dir>/checkpoints/*.ckpt)"
                                 if what == "checkpoint" else ""))
    if not path.is_file():
        raise FileNotFoundError(f"{key}={path} does not exist")
    kind = sniff(path)
    if kind != "torch":
        unreadable = "gan.train checkpoint" if what == "checkpoint" else f"{what} file"
        holds = {"empty": "an empty file", "unknown": "text or unknown bytes"}.get(kind, kind)
        raise CheckpointError(f"{key}={path} is not a readable {unreadable}: not a torch file "
                              f"(it holds {holds})")
    return path


def _reason(err: Exception) -> str:
    """The first line of a loader error, without torch's weights_only advice."""
    if isinstance(err, pickle.UnpicklingError) and "Weights only load failed" in str(err):
        return "it holds Python objects other than tensors, which gan.train never writes"
    if isinstance(err, (zipfile.BadZipFile, EOFError)) or "zip archive" in str(err) or (
            "central directory" in str(err)):
        return "not a complete torch zip archive"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"{type(err).__name__}: {first[:120]}"


def config_diff(saved: dict, current: dict, keys=MODEL_KEYS) -> list[str]:
    """`key=<checkpoint value> (checkpoint) vs <value> (this run)` for every config leaf under
    `keys` (prefixes or whole names) that differs."""
    def leaves(node, prefix=""):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            yield prefix, node

    old, new = dict(leaves(saved)), dict(leaves(current))
    names = sorted(n for n in set(old) | set(new) if any(n == k or n.startswith(k) for k in keys))
    return [f"{n}={old.get(n, '<absent>')} (checkpoint) vs {new.get(n, '<absent>')} (this run)"
            for n in names if old.get(n, "<absent>") != new.get(n, "<absent>")]


def mismatch_error(path, key: str, saved_config: dict, config: dict, errors: list[str],
                   hint: str = "") -> CheckpointError:
    """The error for weights that do not fit: the config keys that differ between the
    checkpoint's run and this one when there are any (the cause), else the first key errors."""
    diff = config_diff(saved_config, config)
    shown = diff or errors
    more = f" (+{len(shown) - 6} more)" if len(shown) > 6 else ""
    what = "was trained with another model" if diff else "does not fit this model"
    return CheckpointError(
        f"{key}={path} {what}: {'; '.join(shown[:6])}{more}. Run with the checkpoint's settings "
        f"(its run dir's .hydra/config.yaml){hint} or change {key}=.")


def refuse_retired(state_dict: dict, path, key: str = "ckpt_path") -> None:
    """Refuse, in one line, a checkpoint that holds weights of a design that is gone
    (gan/io/legacy.py RETIRED): a key-by-key mismatch would not say why. Its generator is a
    plain generator, so sampling from it (Sampler) still works and does not come here."""
    for prefix, what in RETIRED.items():
        if any(k.startswith(prefix) for k in state_dict):
            raise CheckpointError(
                f"{key}={path} holds {what}: it cannot resume or train on with today's code; "
                f"start a new run (gan.generate ckpt_path={path} still draws from its generator)")


def check_fits(ckpt: dict, target: dict, config: dict, path, key: str = "ckpt_path") -> None:
    """Refuse a checkpoint whose weights do not fit `target` (a module's state_dict)."""
    refuse_retired(ckpt["state_dict"], path, key)
    errors = shape_errors("", ckpt["state_dict"], target)
    if errors:
        raise mismatch_error(path, key, ckpt["hyper_parameters"]["config"], config,
                             [e.lstrip(".") for e in errors])


def part_weights(state_dict: dict, part: str) -> dict:
    """The weights of child `part` (generator, discriminator, generator_ema), prefix stripped,
    as a net rebuilt from the config holds them (plain weights, no spectral-norm stash)."""
    prefix = part.rstrip(".") + "."
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def generator_weights(state_dict: dict) -> dict:
    """The sampling generator's weights: the averaged copy (EMA) when the run kept one."""
    for prefix in (EMA, GENERATOR):
        weights = part_weights(state_dict, prefix)
        if weights:
            return weights
    raise CheckpointError("the checkpoint holds no generator weights")


def shape_errors(part: str, source: dict, target: dict) -> list[str]:
    """Every key that is missing, unexpected or shaped differently, one line each."""
    errors = [f"{part}.{k}: missing from the checkpoint" for k in target if k not in source]
    errors += [f"{part}.{k}: in the checkpoint but not in this model" for k in source
               if k not in target]
    errors += [f"{part}.{k}: checkpoint shape {tuple(source[k].shape)} != model shape "
               f"{tuple(target[k].shape)}" for k in source
               if k in target and tuple(source[k].shape) != tuple(target[k].shape)]
    return errors


def remove_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Delete `.<name>.*.tmp` files that a killed write left (gan.io.files.atomic_write's names)."""
    removed = []
    for tmp in Path(directory).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    if removed:
        log.info("removed %d partial checkpoint file(s) a killed run left in %s", len(removed),
                 directory)
    return removed


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint reads and writes, made safe for killed runs and bad files.

    Writes: torch.save straight into a temporary file next to the target, then an atomic rename
    (Lightning's own save goes through an fsspec transaction, which stages the bytes in the
    system temp dir, where a kill would strand them). Partial files of earlier killed writes
    in the same folder are removed first. Reads (`trainer.fit(ckpt_path=...)`): load_checkpoint's
    one-line errors and weights_only=True. A checkpoint whose weights or optimizer state hold
    NaN/inf is not written at all. `seconds`: the time spent writing, which the training clock
    (gan/runs/budget.py) leaves out."""

    seconds = 0.0

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        start = time.perf_counter()
        try:
            self._save(checkpoint, path, storage_options)
        finally:
            self.seconds += time.perf_counter() - start

    def _save(self, checkpoint, path, storage_options):
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        if not all_finite(checkpoint):  # a diverged run keeps its last good checkpoint
            log.warning("not writing %s: the weights or optimizer state are not finite; the "
                        "previous checkpoint stays", path)
            return
        remove_stale_temps(Path(path).parent)
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return load_checkpoint(path)


def all_finite(checkpoint: Mapping) -> bool:
    """True when the weights, buffers and optimizer states of a Lightning checkpoint dict are all
    finite. Callback states are not checked: ModelCheckpoint keeps `inf` as its initial best."""
    tensors = []

    def collect(obj):
        if torch.is_tensor(obj):
            if obj.is_floating_point() or obj.is_complex():
                tensors.append(obj)
        elif isinstance(obj, Mapping):
            for value in obj.values():
                collect(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                collect(value)

    collect(checkpoint.get("state_dict", {}))
    collect(checkpoint.get("optimizer_states", []))
    flags: dict[torch.device, list[torch.Tensor]] = {}  # one host read per device, not per tensor
    for t in tensors:
        flags.setdefault(t.device, []).append(torch.isfinite(t).all())
    return all(bool(torch.stack(f).all()) for f in flags.values())
