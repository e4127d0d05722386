"""benchmarks/gpu_check.py: its CPU --quick mode writes one report, every section passing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, child_env, needs_mnist

SECTIONS = ["1. Every model x loss", "2. Images per second", "3. Host syncs per step",
            "4. Metrics wall time", "5. A 2-job sweep", "6. Checkpoints across devices",
            "7. One-device DDP", "8. gan.project and gan.export"]


def gpu_check(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    out = tmp_path / "report.md"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), *args,
                           "--out", str(out)], cwd=tmp_path, env=child_env(),
                          capture_output=True, text=True, timeout=900)
    return proc, out.read_text() if out.is_file() else ""


@pytest.mark.slow
@needs_mnist
def test_the_cpu_quick_check_passes_every_section(tmp_path):
    proc, report = gpu_check(tmp_path, "--device", "cpu", "--quick")
    assert proc.returncode == 0, report + proc.stderr[-2000:]
    for title in SECTIONS:
        assert f"## {title}" in report
    assert "every section passed" in report and "**FAILED**" not in report
    assert "differ by at most 0.0e+00" in report  # the bench's (b) and (c): the same math
    assert "conversions to numbers per step between boundaries: 0.00" in report


def test_the_quick_check_of_training_and_syncs(tmp_path):
    """The default suite's share: every model x loss (quick) trains and moves, and no step
    between log boundaries syncs, with the default callbacks and tricks."""
    proc, report = gpu_check(tmp_path, "--device", "cpu", "--quick", "--only", "models,syncs")
    assert proc.returncode == 0, report + proc.stderr[-2000:]
    assert report.count("| yes |") >= 4 and "| NO |" not in report
    assert "conversions to numbers per step between boundaries: 0.00" in report
    assert "## 5." not in report  # only the sections asked for


def test_cuda_without_a_gpu_is_one_line_and_exit_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    proc, report = gpu_check(tmp_path, "--device", "cuda")
    assert proc.returncode == 2 and report == ""
    assert proc.stderr.strip() == "gpu_check: --device cuda, but torch sees no CUDA device"
