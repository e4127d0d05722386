"""Export a trained generator: `python -m gan.export ckpt_path=<file> format=onnx|torchscript`.

Writes the sampling generator (EMA where the run kept one) as one file that runs without this
package: ONNX (onnxruntime, no torch needed; `pip install .[export]`) or TorchScript
(`torch.jit.load`). Inputs are `z` (batch, latent_dim) float32 and, for a conditional generator,
`labels` (batch,) int64; the output `images` is (batch, C, H, W) in [-1, 1]. The batch size is
dynamic, the latent size fixed. `<out>.json` beside the file records the shapes and classes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from gan.core.drawing import is_conditional
from gan.io.config import CONF_DIR
from gan.io.files import write_json
from gan.sampling.export import (
    SUFFIX,
    example_inputs,
    export_onnx,
    export_torchscript,
    run_exported,
    wrap,
)
from gan.sampling.sampler import Sampler

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
def main(cfg: DictConfig) -> str:
    if cfg.ckpt_path is None:
        raise ValueError("ckpt_path=<file.ckpt> is required")
    if cfg.format not in SUFFIX:
        raise ValueError(f"format={cfg.format!r}: use one of {', '.join(SUFFIX)}")
    if cfg.format == "onnx":
        try:
            import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
        except ImportError:
            raise ImportError("format=onnx needs onnx and onnxscript: pip install '.[export]'") \
                from None
    sampler = Sampler(cfg.ckpt_path)
    model = wrap(sampler)
    out = Path(cfg.out) if cfg.out else (
        Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
        / f"generator{SUFFIX[cfg.format]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    export = export_onnx if cfg.format == "onnx" else export_torchscript
    export(model, example_inputs(sampler, 2, seed=1), out)
    info = {"format": cfg.format, "ckpt_path": str(cfg.ckpt_path),
            "latent_dim": sampler.generator.latent_dim,
            "conditional": is_conditional(sampler.generator),
            "num_classes": sampler.num_classes, "img_shape": list(sampler.img_shape),
            "inputs": {"z": "(batch, latent_dim) float32, N(0, 1)"}
            | ({"labels": "(batch,) int64"} if is_conditional(sampler.generator) else {}),
            "output": "images (batch, C, H, W) float32 in [-1, 1]"}
    if cfg.check:
        inputs = example_inputs(sampler, 64)
        with torch.no_grad():
            expected = model(*inputs)
        diff = (run_exported(out, inputs) - expected).abs().max().item()
        info["check"] = {"n": 64, "max_abs_diff": diff}
        if diff > cfg.atol:
            raise RuntimeError(f"the exported {out} differs from PyTorch by {diff:.3g} "
                               f"> atol={cfg.atol} on 64 seeded z")
        log.info("checked on 64 seeded z: max |exported - PyTorch| = %.3g", diff)
    write_json(out.with_suffix(out.suffix + ".json"), info)
    log.info("wrote %s (%.0f KiB)", out, out.stat().st_size / 1024)
    return str(out)


if __name__ == "__main__":
    main()
