"""The speed switches and the benchmark: bf16 for every loss (penalties in fp32), compile=true
against eager, fused Adam by default, the throughput callback, and `python -m gan.bench`."""

from __future__ import annotations

import json
import logging
import math
import re

import pytest
import torch

from gan.core.penalties import gradient_penalty, squared_grad_norm
from gan.runs.wiring import build_module, fit
from tests.conftest import needs_mnist, run_module

TINY_MLP = ["model=mlp", "model.latent_dim=8", "model.generator.hidden=[16]",
            "model.discriminator.hidden=[16]", "trainer.limit_train_batches=3",
            "~callbacks.metrics", "~callbacks.samples", "~callbacks.last",
            "~callbacks.periodic", "~callbacks.best"]
LOSSES = ["bce", "lsgan", "hinge", "wgan", "wgan_gp", "wgan_lp"]


def finite_state(module) -> bool:
    tensors = module.state_dict().values()
    return all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())


# ---- bf16 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", LOSSES)
def test_bf16_mixed_trains_every_loss(fast_cfg, loss):
    # n_critic=5 losses take a G step only every 5th batch: give them 5.
    cfg = fast_cfg(*TINY_MLP, f"loss={loss}", "trainer.precision=bf16-mixed",
                   "trainer.limit_train_batches=5")
    trainer, module = fit(cfg)
    assert trainer.precision == "bf16-mixed"
    assert module.d_step == 5 and module.g_step >= 1
    metrics = trainer.callback_metrics
    for key in ("train/d_loss", "train/g_loss"):
        assert math.isfinite(float(metrics[key])), f"{key} = {metrics[key]} under bf16"
    assert finite_state(module)


@pytest.mark.parametrize("precision", ["bf16-true", "64-true"])
@pytest.mark.parametrize("option", ["loss=wgan_gp", "tricks=[r1]"])
def test_true_precisions_train_the_input_gradient_penalties(fast_cfg, precision, option):
    """Weights in bf16 (or fp64): the penalty's input gradient runs in the weights' dtype."""
    cfg = fast_cfg(*TINY_MLP, option, f"trainer.precision={precision}",
                   "trainer.limit_train_batches=5")
    trainer, module = fit(cfg)
    dtype = {"bf16-true": torch.bfloat16, "64-true": torch.float64}[precision]
    assert next(module.discriminator.parameters()).dtype == dtype
    assert module.d_step == 5 and module.g_step >= 1
    assert math.isfinite(float(trainer.callback_metrics["train/d_penalty"]))
    assert float(trainer.callback_metrics["train/d_penalty"]) > 0


@pytest.mark.parametrize("penalty", ["gp", "r1"])
def test_penalties_stay_fp32_under_bf16_autocast(penalty):
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh(),
                            torch.nn.Linear(8, 1))
    real, fake = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)

    def value():
        torch.manual_seed(1)  # the same interpolation points for GP
        if penalty == "gp":
            return gradient_penalty(D, real, fake)
        return squared_grad_norm(D, real).mean()

    eager = value()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert D(real).dtype == torch.bfloat16  # autocast is on for the rest of D's loss
        mixed = value()
    assert mixed.dtype == torch.float32
    assert torch.equal(mixed, eager)  # computed in fp32 exactly, not in bf16


# ---- compile ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_compile_matches_eager_on_the_first_steps(fast_cfg):
    def run(*extra):
        trainer, module = fit(fast_cfg(*TINY_MLP, *extra))
        return {k: float(v) for k, v in trainer.callback_metrics.items()}, module

    eager_metrics, eager = run()
    compiled_metrics, compiled = run("compile=true")
    assert compiled.generator._compiled_call_impl is not None
    assert compiled.discriminator._compiled_call_impl is not None
    # In-place compile: the same parameter names, so checkpoints load either way.
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    for key in ("train/d_loss", "train/g_loss", "train/d_real", "train/d_fake"):
        assert compiled_metrics[key] == pytest.approx(eager_metrics[key], rel=1e-4, abs=1e-5)
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name  # 3 steps of G and D alike


@pytest.mark.parametrize("setting,loss,modes", [
    ("true", "bce", ["default", "default"]),
    ("reduce-overhead", "bce", ["reduce-overhead", "reduce-overhead"]),
    ("reduce-overhead", "wgan_gp", ["reduce-overhead"]),  # the double-backward critic: eager
    ("false", "bce", []),
])
def test_compile_modes_reach_torch_compile(fast_cfg, monkeypatch, setting, loss, modes):
    seen = []
    monkeypatch.setattr(torch.nn.Module, "compile",
                        lambda self, **kwargs: seen.append(kwargs.get("mode")))
    build_module(fast_cfg(*TINY_MLP, f"compile={setting}", f"loss={loss}"))
    assert seen == modes


def test_compile_refuses_an_unknown_mode(fast_cfg):
    with pytest.raises(ValueError, match="compile must be true, false or one of default, "
                                         "reduce-overhead"):
        build_module(fast_cfg(*TINY_MLP, "compile=fastest"))


def test_trainer_sets_tf32_and_cudnn_benchmark(fast_cfg):
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
    try:
        fit(fast_cfg(*TINY_MLP, "trainer.float32_matmul_precision=high",
                     "trainer.benchmark=true"))
        assert torch.get_float32_matmul_precision() == "high"
        assert torch.backends.cudnn.benchmark is True
        fit(fast_cfg(*TINY_MLP))  # the defaults put full float32 back
        assert torch.get_float32_matmul_precision() == "highest"
        assert torch.backends.cudnn.benchmark is False
        with pytest.raises(Exception, match="trainer.float32_matmul_precision must be one of"):
            fit(fast_cfg(*TINY_MLP, "trainer.float32_matmul_precision=tf32"))
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.benchmark = before[1]


def test_the_gpu_recipe_turns_the_gpu_switches_on(tmp_path):
    from tests.conftest import compose_train

    cfg = compose_train(["experiment=gpu"], tmp_path)
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.devices == 1
    assert cfg.trainer.benchmark is True and cfg.trainer.float32_matmul_precision == "high"
    assert cfg.trainer.precision == "bf16-mixed" and cfg.compile is True
    assert cfg.data.batch_size == 128 and cfg.model.generator.width == 64


def test_compile_keeps_a_double_backward_critic_eager(fast_cfg, caplog):
    caplog.set_level(logging.INFO, logger="gan.runs.compile")
    for loss, tricks in (("wgan_gp", "[]"), ("bce", "[r1]")):
        module, _ = build_module(fast_cfg(*TINY_MLP, f"loss={loss}", f"tricks={tricks}",
                                          "compile=true"))
        assert module.generator._compiled_call_impl is not None
        assert module.discriminator._compiled_call_impl is None
    assert [r.getMessage().split(" because ")[1].split(" ")[0] for r in caplog.records] == [
        "WGANGP", "R1"]
    module, _ = build_module(fast_cfg(*TINY_MLP, "loss=hinge", "compile=true"))
    assert module.discriminator._compiled_call_impl is not None


# ---- optimizer and callbacks -----------------------------------------------------------------

@pytest.mark.parametrize("optim", ["adam", "adamw"])
def test_adam_is_fused_by_default_and_switchable(fast_cfg, optim):
    module, _ = build_module(fast_cfg(*TINY_MLP, f"optim={optim}"))
    assert all(opt.defaults["fused"] for opt in module.configure_optimizers())
    module, _ = build_module(fast_cfg(*TINY_MLP, f"optim={optim}", "optim.fused=null"))
    assert not any(opt.defaults["fused"] for opt in module.configure_optimizers())


def test_throughput_logs_only_at_the_logging_interval(fast_cfg, monkeypatch):
    from gan.runs.throughput import Throughput

    logged = []
    original = Throughput.on_train_batch_end

    def spy(self, trainer, pl_module, *args):
        before = self.rate
        original(self, trainer, pl_module, *args)
        logged.append(self.rate is not before)

    monkeypatch.setattr(Throughput, "on_train_batch_end", spy)
    cfg = fast_cfg(*TINY_MLP, "trainer.limit_train_batches=8", "trainer.log_every_n_steps=3")
    trainer, _ = fit(cfg)
    # Batches 1..8: the logger writes after batches 3 and 6; batch 1 only starts the clock.
    assert [i + 1 for i, new in enumerate(logged) if new] == [3, 6]
    assert float(trainer.callback_metrics["train/img_per_s"]) > 0


# ---- the benchmark ---------------------------------------------------------------------------

@needs_mnist
def test_bench_prints_every_row_with_ratios_from_measured_times(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_module("gan.bench", "steps=3", "warmup=1", "repeats=2", "devices=[cpu]",
                      f"json={out}", cwd=tmp_path, timeout=600)
    records = json.loads(out.read_text())["records"]
    assert [(r["model"], r["loop"]) for r in records] == [
        (m, loop) for m in ("dcgan", "mlp") for loop in "abc"]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| cpu |")]
    assert len(rows) == 6
    by = {(r["model"], r["loop"]): r for r in records}
    for model in ("mlp", "dcgan"):
        a, b, c = (by[model, loop] for loop in "abc")
        for r in (a, b, c):
            assert len(r["seconds"]) == 2 and all(s > 0 for s in r["seconds"])
            assert r["step_s"] == pytest.approx(sorted(r["seconds"])[0] / 2 / 3
                                                + sorted(r["seconds"])[1] / 2 / 3)
            assert r["batch"] == 64  # the default recipe's, on either net
            assert r["img_per_s"] == pytest.approx(r["batch"] / r["step_s"])
        for ref, r in (("a", a), ("b", b)):  # paired per repeat: the median of two ratios
            ratios = [x / y for x, y in zip(r["seconds"], c["seconds"])]
            assert c[f"vs_{ref}"] == pytest.approx(sum(ratios) / 2)
            assert c[f"vs_{ref}_range"] == pytest.approx(sorted(ratios))
        # The printed row carries the same measured figures.
        row = next(r for r in rows if f"| {model} | (c) Lightning |" in r)
        cells = [x.strip() for x in row.strip("|").split("|")]
        assert cells[3] == str(c["batch"]) and cells[4] == f"{c['img_per_s']:,.0f}"
        assert cells[5] == f"{c['step_s'] * 1e3:.1f}"
        low, high = c["vs_b_range"]
        assert cells[6].startswith(f"{c['vs_a']:.2f}x [")
        assert cells[7] == f"{c['vs_b']:.2f}x [{low:.2f}, {high:.2f}]"
    assert re.search(r"median of 2 x 3 steps", proc.stdout)
    assert proc.stdout.count("| device | model |") == 1  # one table, rows as measured
    # Equal math: from one seed, (b) and (c) end with the same weights (G, D and G's EMA).
    for model in ("mlp", "dcgan"):
        assert by[model, "c"]["weight_gap"] == 0.0
        assert f"cpu {model}: (b) and (c) weights after 3 + warm-up steps from one seed differ " \
               "by at most 0.0e+00" in proc.stdout


def bench_config(*overrides: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gan.io.config import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("bench", overrides=["steps=2", "warmup=1", "repeats=1", "devices=[cpu]",
                                           "~models.mlp", *overrides])


@needs_mnist
def test_bench_catches_a_bare_loop_without_the_tricks_callbacks(monkeypatch):
    """The default recipe's per-batch callbacks (EMA's update) left out of (b): the weight
    check sees it."""
    from gan.benchmark import loops as bench

    monkeypatch.setattr(bench, "batch_end", lambda *args: None)
    (record,) = [r for r in bench.run(bench_config(), say=lambda line: None) if r["loop"] == "c"]
    assert record["weight_gap"] > 1e-4


@needs_mnist
def test_bench_profile_lists_lightnings_extra_calls(capsys):
    from gan.benchmark.loops import run

    lines = []
    records = run(bench_config("profile=true", "profile_top=3"), say=lines.append)
    (c,) = [r for r in records if r["loop"] == "c"]
    extra = [p for p in c["profile"] if p["extra"]]
    # Lightning's loop is in (c) only: its functions are among the extra calls, none in (b)'s.
    assert any("lightning/pytorch/loops" in p["function"] and p["calls_per_step"] > 0
               for p in extra)
    # The ops both loops call alike (the math) are not listed as extra.
    assert not any("run_backward" in p["function"] for p in extra)
    table = lines[lines.index("| function | us/step | extra calls/step |"):]
    assert len(table) == 2 + 3 + 2
    # (b)'s own loop is what (c)'s training_step stands against
    assert table[-1].startswith("Called more often in (b), counted against: ")
    assert "gan/benchmark/loops.py" in table[-1] and "bare_loop" in table[-1]
    assert "cpu dcgan: host time per step of (c) minus (b)" in "\n".join(lines)
