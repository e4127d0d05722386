"""`sampler=drs` reads D's output as a calibrated logit: a run whose D's is not (any loss but
BCE, a trick that moves D's optimum) is refused in one line before training, never sampled on
raw scores (gan/core/calibration.py)."""

from __future__ import annotations

import pytest

from gan.core.calibration import calibration_refusal
from gan.sampling.posthoc import Plain
from gan.sampling.rejection import DRS
from tests.conftest import FAST, compose, run_module


@pytest.mark.parametrize("overrides,refused", [
    (["+sampler=drs"], None),                                   # BCE: its logit is calibrated
    (["+sampler=drs", "loss=hinge"], "loss=hinge's is not"),
    (["+sampler=drs", "loss=rpgan"], "loss=rpgan's is not"),
    (["+sampler=drs", "loss=wgan_gp"], "loss=wgangp's is not"),
    (["+sampler=drs", "tricks=[ema,label_smoothing]"], "tricks.label_smoothing"),
    (["+sampler=drs", "recipe=unconditional", "tricks=[pac]"], "tricks.pac's D scores packs"),
    (["+sampler=truncation", "loss=hinge"], None),               # reads no D
    (["loss=hinge"], None),
])
def test_which_runs_drs_refuses(overrides, refused):
    cfg = compose("train", *overrides)
    why = calibration_refusal(cfg)
    if refused is None:
        assert why is None
    else:
        assert why.startswith("sampler=drs needs D's output to be a calibrated logit")
        assert refused in why and "\n" not in why


def test_samplers_say_whether_they_read_a_calibrated_logit():
    hinge = {"loss": {"_target_": "gan.core.losses.Hinge"}}
    assert calibration_refusal(hinge, sampler=DRS()) is not None
    assert calibration_refusal(hinge, sampler=Plain()) is None


def test_train_refuses_drs_on_a_hinge_d_in_one_line(tmp_path):
    """The real command line: exit 2 and one `gan.train:` line naming the loss, before
    anything is trained or written."""
    proc = run_module("gan.train", *FAST, "loss=hinge", "+sampler=drs",
                      f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out, out
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gan.train:")]
    assert len(lines) == 1, out
    assert "sampler=drs needs D's output to be a calibrated logit; loss=hinge's is not" in lines[0]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_drawing_from_a_checkpoint_refuses_drs_on_a_hinge_d():
    """gan.generate / gan.evaluate: the checkpoint's stored loss decides, before any drawing."""
    from omegaconf import open_dict

    from gan.sampling.sampler import Sampler
    from tests.conftest import REPO

    sampler = Sampler(REPO / "tests" / "fixtures" / "before_layers" / "run" / "checkpoints"
                      / "last.ckpt")
    assert sampler(4, posthoc=Plain()).shape[0] == 4
    with open_dict(sampler.config):
        sampler.config.loss = {"_target_": "gan.core.losses.Hinge"}
    with pytest.raises(ValueError, match="loss=hinge's is not"):
        sampler(4, posthoc=DRS(burn_in=8))
