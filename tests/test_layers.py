"""The house's shape: the import contract holds (and catches an upward import), and what was
written before the layered packages still loads, generates and reports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import torch

from gan.data.registry import dataset_name
from gan.io.checkpoint import load_checkpoint
from gan.sampling.sampler import Sampler
from tests.conftest import REPO, run_module

BEFORE = REPO / "tests" / "fixtures" / "before_layers"  # written by the code of 2026-12-01


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    code = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": ""})


def test_the_import_contract_holds():
    proc = lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout


def test_the_import_contract_catches_a_lower_layer_importing_a_higher_one(tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "gan", copy / "gan", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", copy)
    guard = copy / "gan" / "core" / "guard.py"
    guard.write_text(guard.read_text() + "\nfrom gan.runs import budget  # noqa\n")
    proc = lint_imports(copy)
    assert proc.returncode != 0
    assert "gan.core.guard -> gan.runs.budget" in proc.stdout


def test_a_checkpoint_from_before_the_move_loads_and_names_its_data():
    ckpt = load_checkpoint(BEFORE / "run" / "checkpoints" / "last.ckpt")
    config = ckpt["hyper_parameters"]["config"]
    # Its stored class paths are today's (the file itself says gan.tricks.EMA etc.).
    assert config["tricks"]["ema"]["_target_"] == "gan.tricks.ema.EMA"
    assert config["data"]["_target_"] == "gan.data.images.FakeData"
    assert dataset_name(config) is None  # fake data has no metric classifier
    assert dataset_name({"data": {"_target_": "gan.data.MNIST"}}) == "mnist"  # old path
    sampler = Sampler(BEFORE / "run" / "checkpoints" / "last.ckpt", "cpu")
    images = sampler.generator(torch.randn(4, sampler.generator.latent_dim), None)
    assert images.shape == (4, 1, 28, 28) and torch.isfinite(images).all()


def test_a_checkpoint_from_before_the_move_generates(tmp_path):
    out = tmp_path / "grid.png"
    run_module("gan.generate", f"ckpt_path={BEFORE / 'run' / 'checkpoints' / 'last.ckpt'}",
               "n=16", f"out={out}", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert out.is_file() and out.stat().st_size > 100


def test_a_sweep_from_before_the_move_reports(tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(BEFORE / "sweep", sweep)
    run_module("gan.report", str(sweep), cwd=tmp_path)
    report = (sweep / "report" / "report.md").read_text()
    assert "loss=bce" in report and "loss=hinge" in report
    assert "_target_" not in report  # groups are named by choices and values, not class paths
