"""Export a trained generator: `python -m gan.export ckpt_path=<file> format=onnx|torchscript`.

Writes the sampling generator (EMA where the run kept one) as one file that runs without this
package: ONNX (onnxruntime, no torch needed; `pip install .[export]`) or TorchScript
(`torch.jit.load`). Inputs are `z` (batch, latent_dim) float32 and, for a conditional generator,
`labels` (batch,) int64; the output `images` is (batch, C, H, W) in [-1, 1]. The batch size is
dynamic, the latent size fixed. `<out>.json` beside the file records the shapes and classes;
the file itself carries the label space (none, the data's classes, or cluster ids with their
frequencies) as metadata, and `<out>.md` beside it is the model card (gan/sampling/card.py).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import lightning
import torch
from omegaconf import DictConfig

from gan.cli.runner import entry_point
from gan.io.files import atomic_write, check_output, write_json
from gan.io.image_model import load_image_model
from gan.io.keys import number
from gan.io.usage import UsageError
from gan.sampling.card import card, label_space, run_dir_of
from gan.sampling.export import (
    SUFFIX,
    example_inputs,
    export_onnx,
    export_torchscript,
    run_exported,
    wrap,
)
from gan.sweeps.spread import group_spread

log = logging.getLogger(__name__)

KIND = {"onnx": "ONNX", "torchscript": "torch"}  # what the written file is (gan.io.files.sniff)


def check(cfg: DictConfig) -> Path:
    """The keys, the exporter and the output, refused in one line before the checkpoint is
    read: `out` must end in the format's suffix (a .onnx name never receives TorchScript) and
    an existing `out` must be of the same kind."""
    if cfg.ckpt_path is None:
        raise UsageError("ckpt_path=<file.ckpt> is required")
    if cfg.format not in SUFFIX:
        raise UsageError(f"format={cfg.format!r}: use one of {', '.join(SUFFIX)}")
    number(cfg.atol, "atol", positive=True)
    if cfg.format == "onnx":
        try:
            import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
        except ImportError:
            raise UsageError("format=onnx needs onnx and onnxscript: pip install '.[export]'") \
                from None
    from hydra.core.hydra_config import HydraConfig

    out = Path(cfg.out) if cfg.out else (
        Path(HydraConfig.get().runtime.output_dir) / f"generator{SUFFIX[cfg.format]}")
    if out.suffix.lower() != SUFFIX[cfg.format]:
        raise UsageError(f"out={out}: format={cfg.format} writes a {SUFFIX[cfg.format]} file; "
                         f"name it so, or choose the format its name says")
    check_output(out, "out", (SUFFIX[cfg.format],), kind=KIND[cfg.format])
    check_output(out.with_suffix(out.suffix + ".json"), "out")
    check_output(out.with_suffix(out.suffix + ".md"), "out")
    return out


def export(cfg: DictConfig) -> str:
    out = check(cfg)
    sampler = load_image_model(cfg.ckpt_path)
    try:
        model = wrap(sampler)
    except ValueError as err:
        raise UsageError(str(err)) from None
    space = label_space(sampler)
    spec = sampler.spec
    info = {"format": cfg.format, "ckpt_path": str(cfg.ckpt_path), "label_space": space,
            "latent_dim": sampler.latent_dim,
            "conditional": spec.labels.conditional,
            "num_classes": spec.labels.k, "img_shape": list(spec.shape),
            "inputs": {"z": "(batch, latent_dim) float32, N(0, 1)"}
            | ({"labels": "(batch,) int64"} if spec.labels.conditional else {}),
            "output": "images (batch, C, H, W) float32 in [-1, 1]"}
    # Written and checked beside `out` under another name, then renamed over it: a failed
    # export or check leaves the previous file (and its .json) as they were.
    staged = out.with_name(f".{out.stem}.staged{out.suffix}")
    try:
        (export_onnx if cfg.format == "onnx" else export_torchscript)(
            model, example_inputs(sampler, 2, seed=1), staged,
            metadata={"label_space": json.dumps(space)})
        if cfg.check:
            info["check"] = compare(model, sampler, staged, cfg.atol)
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)
    write_json(out.with_suffix(out.suffix + ".json"), info)
    versions = {"torch": torch.__version__, "lightning": lightning.__version__}
    text = card(out, cfg.format, sampler, str(cfg.ckpt_path), space, versions,
                group_spread(run_dir_of(cfg.ckpt_path)))
    atomic_write(out.with_suffix(out.suffix + ".md"), lambda tmp: tmp.write_text(text))
    log.info("wrote %s (%.0f KiB) and its model card %s.md", out, out.stat().st_size / 1024,
             out.name)
    return str(out)


def compare(model, sampler, path: Path, atol: float) -> dict:
    """The exported file against PyTorch on 64 seeded z; a RuntimeError beyond `atol`."""
    inputs = example_inputs(sampler, 64)
    with torch.no_grad():
        expected = model(*inputs)
    diff = (run_exported(path, inputs) - expected).abs().max().item()
    if diff > atol:
        raise RuntimeError(f"the exported file differs from PyTorch by {diff:.3g} "
                           f"> atol={atol} on 64 seeded z; nothing was written")
    log.info("checked on 64 seeded z: max |exported - PyTorch| = %.3g", diff)
    return {"n": 64, "max_abs_diff": diff}


main = entry_point("export", export, "export", check=check)


if __name__ == "__main__":
    main()
