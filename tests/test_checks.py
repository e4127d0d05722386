"""Untrainable input is refused at the start: a non-zero exit, one line naming the key, no
traceback, nothing created on the side. Real `python -m gan.*` subprocesses, as a user runs them."""

from __future__ import annotations

import pytest
import torch

from gan.io.usage import UsageError
from gan.runs.checks import check_config
from tests.conftest import FAST, FAST_DATA, run_module

TINY = [*FAST, "model=mlp", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]"]

BAD_TRAIN = [  # (overrides, what the one line must name)
    (["optim.lr_g=abc"], "optim.lr_g=abc"),
    (["optim.lr_g=-1"], "optim.lr_g=-1"),
    (["optim.lr_d=0"], "optim.lr_d=0"),
    (["model.latent_dim=0"], "model.latent_dim=0"),
    (["data.batch_size=1000"], "data.batch_size=1000"),  # data.n=128
    (["trainer.devices=3"], "trainer.devices=3 needs trainer=ddp"),
    (["data=mnist", "data.root={tmp}/no_such_root"], "data.root={tmp}/no_such_root"),
]


def _one_line_refusal(code: int, stdout: str, stderr: str, key: str, prog: str) -> None:
    out = stdout + stderr
    assert code != 0, out
    assert "Traceback" not in out and "Error executing job" not in out, out
    lines = [line for line in stderr.splitlines() if line.startswith(f"{prog}:")]
    assert len(lines) == 1 and key in lines[0], out


def refusal(proc) -> tuple[int, str, str]:
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("where", [
    "in_process", pytest.param("subprocess", marks=pytest.mark.slow)])
@pytest.mark.parametrize("args,key", BAD_TRAIN, ids=[" ".join(a) for a, _ in BAD_TRAIN])
def test_train_refuses_bad_input_in_one_line(tmp_path, run_main, args, key, where):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    args = [a.format(tmp=tmp_path) for a in args]
    base = [a for a in TINY if a not in FAST_DATA] if "data=mnist" in args else TINY
    argv = [*base, *args, f"hydra.run.dir={tmp_path / 'run'}"]
    # Refused once Lightning has started (its loggers hold the first test's streams): always
    # a real process.
    late = any(a.startswith(("data.batch_size", "data.root")) for a in args)
    result = (run_main("gan.train", *argv, cwd=cwd) if where == "in_process" and not late else
              refusal(run_module("gan.train", *argv, cwd=cwd, check=False)))
    _one_line_refusal(*result, key.format(tmp=tmp_path), "gan.train")
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "run"]  # no data root made
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_evaluate_names_nan_samples(tmp_path):
    samples = torch.zeros(100, 1, 28, 28)
    samples[3, 0, 5, 5] = float("nan")
    torch.save(samples, tmp_path / "s.pt")
    proc = run_module("gan.evaluate", f"samples={tmp_path / 's.pt'}", "n=100",
                      f"hydra.run.dir={tmp_path / 'ev'}", cwd=tmp_path, check=False)
    _one_line_refusal(*refusal(proc), "hold 1 NaN/inf value(s)", "gan.evaluate")
    assert "x * 2 - 1" not in proc.stderr  # not mistaken for [0, 1] images


@pytest.mark.parametrize("override,key", [
    ("optim.lr_g=1e-4", None), ("optim.lr_g=nan", "optim.lr_g"), ("optim.lr_d=true", "optim.lr_d"),
    ("model.latent_dim=2.5", "model.latent_dim"), ("trainer.devices=1", None),
    ("trainer.devices=[0,1]", "trainer.devices"), ("trainer.devices=-1", None),
    ("trainer.devices='0,1'", "trainer.devices"),
])
def test_check_config_by_key(fast_cfg, override, key):
    cfg = fast_cfg("model=mlp", override)
    if key is None:
        check_config(cfg)
    else:
        with pytest.raises(UsageError, match=key.replace(".", r"\.")):
            check_config(cfg)


def test_ddp_config_passes_the_device_check(fast_cfg):
    check_config(fast_cfg("trainer=ddp", "trainer.accelerator=cpu"))
    cfg = fast_cfg("trainer.devices=2")
    with pytest.raises(UsageError, match="trainer=ddp"):
        check_config(cfg)
    cfg = fast_cfg("trainer.devices=2", "+trainer.strategy=ddp")  # plain DDP fails on GANs
    with pytest.raises(UsageError, match="trainer.strategy=ddp"):
        check_config(cfg)
