"""Shared fixtures: compose the real config, shrunk for speed, with a temporary run dir."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from gan.io.config import CONF_DIR, compose_config, compose_train  # noqa: F401 (tests import them)
from gan.runs.wiring import build_module

REPO = Path(__file__).resolve().parent.parent
# Small and fast: the default recipe (self-conditioned: 50 clusters of D's features of the 128
# fake images) on synthetic data, CPU, no progress bar. Tests add what they check; a test of the
# old default adds `recipe=unconditional` (UNCONDITIONAL), as users do.
FAST_DATA = ["data=fake", "data.n=128", "data.batch_size=16"]
UNCONDITIONAL = ["recipe=unconditional"]
FAST = [
    *FAST_DATA,
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
    "n_fixed=16",
]


# The tiny nets most unit tests train: the architectures as configured, a few units wide.
TINY_MLP = ["model=mlp", "model.latent_dim=8", "model.generator.hidden=[16]",
            "model.discriminator.hidden=[16]", "trainer.limit_train_batches=2"]
TINY_DCGAN = ["model=dcgan", "model.latent_dim=8", "model.generator.width=4",
              "model.discriminator.width=4", "trainer.limit_train_batches=2"]


def pytest_configure(config):
    # Under pytest-xdist each worker takes its share of the cores: N workers with a thread per
    # core each would thrash OpenMP (gan/runs/resources.py measured it for parallel sweep jobs).
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def compose(name: str, *overrides: str) -> DictConfig:
    """The one compose helper: conf/<name>.yaml with `overrides`, no run dir."""
    cfg = compose_config(name, list(overrides))
    GlobalHydra.instance().clear()
    return cfg


def tiny_module(cfg: DictConfig, n_fixed: int | None = None):
    """The GAN (and its tricks) `gan.train` would build from `cfg`, same seed and init, set up as
    Trainer.fit sets tricks up, without a Trainer."""
    import torch
    from omegaconf import open_dict

    if n_fixed is not None:
        with open_dict(cfg):
            cfg.n_fixed = n_fixed
    torch.manual_seed(cfg.seed)
    module, tricks = build_module(cfg)
    for trick in tricks:
        trick.setup(None, module, "fit")
    module.setup("fit")  # after the callbacks', as Lightning orders them: the tricks' state
    return module


@pytest.fixture
def fast_cfg(tmp_path):
    def make(*overrides: str, fake_data: bool = True) -> DictConfig:
        base = FAST if fake_data else [o for o in FAST if o not in FAST_DATA]
        return compose_train([*base, *overrides], tmp_path)

    yield make
    GlobalHydra.instance().clear()


def data_root() -> Path:
    """Real MNIST/Fashion-MNIST: $GAN_DATA_DIR (CI sets ../shared/data), else ./data."""
    return Path(os.environ.get("GAN_DATA_DIR", REPO / "data"))


needs_mnist = pytest.mark.skipif(
    not (data_root() / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file(),
    reason="real MNIST not found: set GAN_DATA_DIR to the folder holding MNIST/raw/",
)


def child_env(**extra: str) -> dict:
    """The environment of a `python -m gan.*` child: one thread, unbuffered, one-line Hydra
    errors, and this checkout first on the path, so `+callbacks.x._target_=tests....` test
    helpers import in the child too."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           "HYDRA_FULL_ERROR": "0", **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_module(module: str, *args: str, cwd: Path, timeout: int = 300,
               check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m <module> args...` in a subprocess, as a user types it."""
    env = child_env(**(env or {}))
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def run_main(monkeypatch, capfd):
    """`python -m <module> args...` as the command line runs it, but in this process (no
    interpreter start-up: ~10 s a call on 2 cores): returns (exit code, stdout, stderr). For
    refusals that happen before training; the subprocess versions run under -m slow."""
    import importlib

    def run(module: str, *args: str, cwd: Path) -> tuple[int, str, str]:
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", [module, *args])
        monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
        GlobalHydra.instance().clear()
        code = 0
        try:
            importlib.import_module(module).main()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        finally:
            GlobalHydra.instance().clear()
            # Hydra's job logging bound handlers to this test's captured streams: drop them.
            root = logging.getLogger()
            for handler in list(root.handlers):
                root.removeHandler(handler)
                handler.close()
        out, err = capfd.readouterr()
        return code, out, err

    return run


def export_and_run(ckpt, tmp_path, fmt: str):
    """(exported, PyTorch) images of a checkpoint's sampling generator for 64 seeded z, the
    export written as `fmt` (onnx, torchscript) from a batch of 2: a batch size it never saw.
    Skips the ONNX case without the [export] extra."""
    import importlib.util

    import torch

    from gan.sampling.export import (
        example_inputs,
        export_onnx,
        export_torchscript,
        run_exported,
        wrap,
    )
    from gan.sampling.sampler import Sampler

    if fmt == "onnx" and not all(importlib.util.find_spec(m) for m in
                                 ("onnx", "onnxscript", "onnxruntime")):
        pytest.skip("needs the [export] extra: pip install '.[export]' (onnx, onnxscript, "
                    "onnxruntime)")
    sampler = Sampler(ckpt)
    model = wrap(sampler)
    out = tmp_path / f"g.{fmt}"
    (export_onnx if fmt == "onnx" else export_torchscript)(model, example_inputs(sampler, 2), out)
    inputs = example_inputs(sampler, 64, seed=123)
    with torch.no_grad():
        expected = model(*inputs)
    return run_exported(out, inputs), expected
