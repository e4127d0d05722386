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

import torch
from torch import nn

from gan.io.files import atomic_write
from gan.io.image_model import ImageModel

log = logging.getLogger(__name__)


SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


class SamplingGenerator(nn.Module):
    """G(z, labels) clamped to [-1, 1], exactly what gan.generate draws."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator.eval()

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, labels).clamp(-1, 1)


class UnconditionalGenerator(SamplingGenerator):
    def forward(self, z: torch.Tensor) -> torch.Tensor:  # one input: no unused labels
        return self.generator(z).clamp(-1, 1)


def example_inputs(model: ImageModel, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Seeded z (and cycled labels for a conditional model) for tracing and checking."""
    g = torch.Generator().manual_seed(seed)  # the CPU stream, then the module's device
    module = model.export_module()
    device = next(iter(module.parameters()), next(iter(module.buffers()), torch.empty(0))).device
    z = torch.randn(n, model.latent_dim, generator=g, device="cpu").to(device)
    labels = model.spec.labels
    if not labels.conditional:
        return (z,)
    return z, labels.cycled(n).to(device)


def wrap(model: ImageModel) -> SamplingGenerator:
    """The model's `export_module()` as the exported graph: (z[, labels]) -> images."""
    if not callable(getattr(model, "export_module", None)) or getattr(
            model, "latent_dim", None) is None:
        raise ValueError(f"gan.export needs a model with export_module() and latent_dim; this "
                         f"{model.describe().get('family', 'model')} has none")
    cls = SamplingGenerator if model.spec.labels.conditional else UnconditionalGenerator
    return cls(model.export_module()).eval().requires_grad_(False)


def export_onnx(model: SamplingGenerator, inputs: tuple[torch.Tensor, ...], out: Path,
                metadata: dict[str, str] | None = None) -> None:
    """`metadata`: the model's metadata_props (onnxruntime: `session.get_modelmeta().
    custom_metadata_map`), e.g. the label space sampling needs."""
    names = ["z", "labels"][: len(inputs)]
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(model, inputs, dynamo=True, input_names=names,
                                output_names=["images"],
                                dynamic_shapes={name: {0: batch} for name in names})

    def write(tmp: Path) -> None:
        program.save(str(tmp))
        if metadata:
            import onnx

            proto = onnx.load(str(tmp))
            onnx.helper.set_model_props(proto, metadata)
            onnx.save(proto, str(tmp))

    atomic_write(out, write)


def export_torchscript(model: SamplingGenerator, inputs: tuple[torch.Tensor, ...],
                       out: Path, metadata: dict[str, str] | None = None) -> None:
    """`metadata`: extra files inside the archive (`torch.jit.load(path, _extra_files=...)`),
    each named `<key>.json`."""
    # Tracing records the tensor operations; the batch stays free (G reshapes with -1 or a
    # batch read from the input), and `check_trace` compares it with eager mode once.
    traced = torch.jit.trace(model, inputs)
    extra = {f"{key}.json": value for key, value in (metadata or {}).items()}
    atomic_write(out, lambda tmp: torch.jit.save(traced, str(tmp), _extra_files=extra))


def run_exported(path: Path, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The exported file's output for `inputs`, read back the way a user would run it."""
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)}
        return torch.from_numpy(session.run(["images"], feed)[0])
    with torch.no_grad():
        return torch.jit.load(str(path))(*inputs)
