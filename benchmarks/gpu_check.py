"""The GPU path in one run: what works, how fast, and where the host waits. One Markdown report.

    PYTHONPATH=$PWD python benchmarks/gpu_check.py --device cuda --out report.md   # < 8 min
    PYTHONPATH=$PWD python benchmarks/gpu_check.py --device cpu --quick --out report.md

Sections (each one runs even when another failed; a failure is one line in the report and the
exit status is 1):
1. every model x loss for a few hundred steps, fp32 and bf16-mixed: finite, and the loss moving;
2. img/s of DCGAN at batch 32, 128 and 512 for the tutorial's loop (a), the bare loop (b) and
   Trainer.fit (c) (gan.benchmark.loops, equal math), each eager, compiled and compiled with CUDA
   graphs (compile=reduce-overhead), with the ratios c/a and c/b;
3. host syncs per training step between log boundaries, counted (tensor-to-number conversions,
   numbers copied to the device and, on CUDA, torch.cuda's sync debug mode);
4. wall time of the metrics (FID, KID, classifier scores) on 10,000 samples;
5. a 2-job sweep sharing the device (hydra/launcher=parallel);
6. a checkpoint written on the device resumed on the CPU, and the reverse;
7. a one-device `trainer=ddp` run;
8. `gan.project` and `gan.export` on the device.
`--quick` shrinks every section (fewer models, steps and samples; batch 32 eager only) so the
CPU run fits the test suite. Real MNIST is read from $GAN_DATA_DIR (sections 2 and 4 need it).
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gan.io.config import compose_train  # noqa: E402
from gan.runs.wiring import fit  # noqa: E402

MODELS = ["mlp", "dcgan", "resnet", "sagan"]
LOSSES = ["bce", "lsgan", "hinge", "wgan", "wgan_gp", "wgan_lp"]
QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
         "~callbacks.metrics", "~callbacks.samples", "~callbacks.per_class",
         "~callbacks.interpolation", "~callbacks.periodic", "~callbacks.best"]


class Check:
    """Settings of one gpu_check run: the device, quick or full, and a scratch folder."""

    def __init__(self, device: str, quick: bool, tmp: Path):
        self.device, self.quick, self.tmp = device, quick, tmp
        self.accelerator = {"cpu": "cpu", "cuda": "gpu"}[device]
        self.n = 0

    def cfg(self, *overrides: str, data: tuple[str, ...] = ("data=fake", "data.n=2048")):
        self.n += 1
        return compose_train([*data, f"trainer.accelerator={self.accelerator}",
                              "trainer.devices=1", "trainer.max_epochs=1", "n_fixed=16",
                              *QUIET, *overrides], self.tmp / f"run{self.n}")


# ---- 1. every model x loss ------------------------------------------------------------------

def models_and_losses(check: Check) -> list[str]:
    models, losses = (["mlp", "dcgan"], ["bce", "wgan_gp"]) if check.quick else (MODELS, LOSSES)
    precisions = ["32-true"] if check.quick else ["32-true", "bf16-mixed"]
    steps = 10 if check.quick else 300
    lines = [f"{steps} batches each, batch 64; `first` and `last`: train/d_loss at the first "
             "and the last log boundary.", "",
             "| model | loss | precision | finite | first d_loss | last d_loss | moved |",
             "| --- | --- | --- | --- | ---: | ---: | --- |"]
    for model in models:
        for loss in losses:
            for precision in precisions:
                seen = []

                class Losses(L.Callback):
                    def on_train_batch_end(self, trainer, pl_module, *args, seen=seen):
                        if "train/d_loss" in trainer.callback_metrics:
                            seen.append(float(trainer.callback_metrics["train/d_loss"]))

                # the default recipe (self-conditioned, EMA) with one part swapped, as users do
                cfg = check.cfg(f"model={model}", f"loss={loss}",
                                f"trainer.precision={precision}", "data.batch_size=64",
                                f"trainer.limit_train_batches={steps}",
                                f"trainer.log_every_n_steps={max(steps // 5, 1)}")
                trainer, module = fit(cfg, callbacks=[Losses()])
                finite = all(torch.isfinite(t).all() for t in module.state_dict().values()
                             if t.is_floating_point())
                first, last = (seen[0], seen[-1]) if seen else (math.nan, math.nan)
                moved = bool(seen) and first != last
                lines.append(f"| {model} | {loss} | {precision} | {'yes' if finite else 'NO'} |"
                             f" {first:.4f} | {last:.4f} | {'yes' if moved else 'NO'} |")
                if not (finite and moved):
                    raise_later(lines, f"{model} x {loss} ({precision}) not finite or not moving")
    return lines


def raise_later(lines: list[str], message: str) -> None:
    """Mark a section failed without stopping it (the table keeps its other rows)."""
    lines.append(f"\n**FAILED**: {message}")


# ---- 2. img/s --------------------------------------------------------------------------------

def speed(check: Check) -> list[str]:
    from gan.benchmark.loops import HEADER, rows, run

    batches = [32] if check.quick else [32, 128, 512]
    modes = {"eager": "compile=false"} if check.quick else {
        "eager": "compile=false", "compiled": "compile=true",
        "cudagraphs": "compile=reduce-overhead"}
    lines = []
    for mode, override in modes.items():
        bench = OmegaConf.create({
            "models": {f"dcgan b{b}": [f"data.batch_size={b}", override] for b in batches},
            "overrides": [], "variants": {}, "devices": [check.device],
            "steps": 5 if check.quick else 80, "warmup": 2 if check.quick else 20,
            "repeats": 1 if check.quick else 3, "threads": None, "profile": False,
            "profile_top": 0})
        notes = []
        records = run(bench, say=notes.append)
        lines += ["", f"**{mode}** ({override})", "", *HEADER, *rows(records), "", *notes]
    return lines


# ---- 3. host syncs per step ------------------------------------------------------------------

SYNCS = ("item", "__float__", "__int__", "__bool__", "tolist", "numpy")


class Host(torch.Tensor):
    """A value the boundary copied to the host (or logged as a host number): reading is free."""

    def __deepcopy__(self, memo):  # ModelCheckpoint deep-copies the logged metrics
        return self.detach().clone()


def syncs(check: Check) -> list[str]:
    import gan.core.guard

    counts, where = collections.Counter(), {"batch": None}
    originals = {name: getattr(torch.Tensor, name) for name in SYNCS}

    def counted(name):
        def method(self, *args, **kwargs):
            if where["batch"] is not None and not isinstance(self, Host) \
                    and (self.device.type != "cpu" or check.device == "cpu"):
                counts[where["batch"]] += 1
            return originals[name](self, *args, **kwargs)
        return method

    to_host = gan.core.guard.to_host

    def marked(values):  # the boundary's copy (counted as one sync): reading it later is free
        if where["batch"] is not None:
            counts[where["batch"]] += 1
        return to_host(values).as_subclass(Host)

    class Mark(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            where["batch"] = batch_idx

        def on_train_end(self, trainer, pl_module):
            where["batch"] = None

    batches, every = (20, 5) if check.quick else (200, 50)
    cfg = check.cfg("trainer.enable_progress_bar=true", f"trainer.log_every_n_steps={every}",
                    f"trainer.limit_train_batches={batches}",
                    "tricks=[ema,instance_noise,diffaugment,label_smoothing]")
    debug = check.device == "cuda"
    for name in SYNCS:
        setattr(torch.Tensor, name, counted(name))
    gan.core.guard.to_host = marked
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if debug:
                torch.cuda.set_sync_debug_mode("warn")
            fit(cfg, callbacks=[Mark()])
    finally:
        if debug:
            torch.cuda.set_sync_debug_mode(0)
        for name, method in originals.items():
            setattr(torch.Tensor, name, method)
        gan.core.guard.to_host = to_host
    between = [b for b in range(batches - 1) if (b + 1) % every]
    per_step = sum(counts[b] for b in between) / len(between)
    lines = [f"Default callbacks and the tricks ema, instance_noise, diffaugment, "
             f"label_smoothing; {batches} batches, log boundary every {every}.", "",
             f"- conversions to numbers per step between boundaries: {per_step:.2f}",
             f"- at each boundary: {counts[every - 1]} (one guard read, the logged values)"]
    if debug:
        device_syncs = sum("synchronizing" in str(w.message) for w in caught)
        lines.append(f"- torch.cuda sync debug mode: {device_syncs} synchronizing calls in "
                     f"{batches} batches (boundaries and setup included)")
    if per_step > 0:
        raise_later(lines, f"{per_step:.2f} syncs per step between boundaries")
    return lines


# ---- 4. metrics wall time --------------------------------------------------------------------

def metrics_time(check: Check) -> list[str]:
    from gan.core.drawing import cycled_labels, draw
    from gan.metrics.scores import compute_metrics

    n = 1000 if check.quick else 10_000
    cfg = check.cfg("trainer.limit_train_batches=2", data=("data=mnist",))
    _, module = fit(cfg)
    module.to(check.device)
    start = time.perf_counter()
    labels = cycled_labels(n, 10).to(check.device)
    fakes = draw(module.sample, n, module.latent_dim, labels, seed=0)
    drawn = time.perf_counter() - start
    values = compute_metrics(fakes, "mnist", n=n, root=cfg.data.root, seed=0)
    total = time.perf_counter() - start
    return [f"{n:,} samples from a DCGAN trained 2 batches: drawing {drawn:.1f} s, drawing and "
            f"scoring {total:.1f} s (FID {values.get('fid', math.nan):.1f}; reference "
            "statistics cached after the first call)"]


# ---- 5-8. processes: sweep, resume across devices, ddp, project and export -----------------

def child(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"`python -m {' '.join(args[:1])}` exited {proc.returncode}: "
                           + " | ".join(tail))
    return proc


def train_args(check: Check, accelerator: str, *extra: str,
               data: tuple[str, ...] = ("data=fake", "data.n=1024")) -> list[str]:
    multirun = ["-m"] if "-m" in extra else []  # Hydra wants the flag before the overrides
    return ["gan.train", *multirun, *data, "data.batch_size=32", "model=dcgan",
            f"trainer.accelerator={accelerator}", "trainer.devices=1", "metric=null", *QUIET,
            *(e for e in extra if e != "-m")]


def sweep(check: Check) -> list[str]:
    out = check.tmp / "sweep"
    start = time.perf_counter()
    child(*train_args(check, check.accelerator, "-m", "seed=0,1", "hydra/launcher=parallel",
                      "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={out}",
                      f"trainer.limit_train_batches={5 if check.quick else 200}"), cwd=check.tmp)
    done = sorted(p.parent.name for p in out.glob("*/status.json"))
    seconds = time.perf_counter() - start
    lines = [f"2 jobs (seed=0,1) in parallel on one {check.device}: {seconds:.1f} s, "
             f"finished: {', '.join(done) or 'none'}"]
    if len(done) != 2:
        raise_later(lines, "not both jobs finished")
    return lines


def resume_across(check: Check) -> list[str]:
    device = check.accelerator
    pairs = [(device, "cpu"), ("cpu", device)] if device != "cpu" else [("cpu", "cpu")]
    lines = []
    for first, second in pairs:
        run = check.tmp / f"resume_{first}_{second}"
        child(*train_args(check, first, "trainer.max_epochs=1", "trainer.limit_train_batches=4",
                          f"hydra.run.dir={run}"), cwd=check.tmp)
        ckpt = run / "checkpoints" / "last.ckpt"
        child(*train_args(check, second, "trainer.max_epochs=2",
                          "trainer.limit_train_batches=4", f"ckpt_path={ckpt}",
                          f"hydra.run.dir={run}"), cwd=check.tmp)
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        lines.append(f"- written on {first}, resumed on {second}: epoch "
                     f"{state['epoch']}, D steps {state['gan_counters']['d_step']}")
        if state["gan_counters"]["d_step"] != 8:
            raise_later(lines, f"{first} -> {second}: expected 8 D steps")
    return lines


def ddp(check: Check) -> list[str]:
    run = check.tmp / "ddp"
    child(*train_args(check, check.accelerator, "trainer=ddp", "trainer.devices=1",
                      "trainer.limit_train_batches=4", f"hydra.run.dir={run}"), cwd=check.tmp)
    return [f"trainer=ddp on 1 {check.device}: finished, "
            f"{'a checkpoint' if (run / 'checkpoints' / 'last.ckpt').is_file() else 'NO ckpt'}"]


def project_and_export(check: Check) -> list[str]:
    from PIL import Image

    run = check.tmp / "for_project"
    child(*train_args(check, check.accelerator, "trainer.limit_train_batches=4",
                      f"hydra.run.dir={run}", data=("data=mnist",)), cwd=check.tmp)
    ckpt = run / "checkpoints" / "last.ckpt"
    image = check.tmp / "digit.png"
    digit = Image.new("L", (28, 28))
    digit.paste(255, (12, 4, 16, 24))  # a "1"
    digit.save(image)
    start = time.perf_counter()
    child("gan.project", f"ckpt_path={ckpt}", f"input={image}", f"device={check.device}",
          "projection.steps=20", "projection.explore_steps=5", "projection.bank=64",
          f"out={check.tmp / 'projected'}", cwd=check.tmp)
    projected = time.perf_counter() - start
    child("gan.export", f"ckpt_path={ckpt}", "format=torchscript",
          f"hydra.run.dir={check.tmp / 'exported'}", cwd=check.tmp)
    return [f"- gan.project device={check.device}: {projected:.1f} s "
            "(20 steps, one image)", "- gan.export format=torchscript: done"]


SECTIONS = {
    "models": ("1. Every model x loss", models_and_losses),
    "speed": ("2. Images per second: tutorial, bare loop, Trainer.fit", speed),
    "syncs": ("3. Host syncs per step", syncs),
    "metrics": ("4. Metrics wall time", metrics_time),
    "sweep": ("5. A 2-job sweep sharing the device", sweep),
    "resume": ("6. Checkpoints across devices", resume_across),
    "ddp": ("7. One-device DDP", ddp),
    "project": ("8. gan.project and gan.export on the device", project_and_export),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes (the CPU test)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.md"))
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections: {','.join(SECTIONS)}")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda, but torch sees no CUDA device", file=sys.stderr)
        return 2
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        print(f"gpu_check: --only: unknown section(s) {', '.join(sorted(unknown))}",
              file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    report = [f"# gpu_check: {name}", "",
              f"torch {torch.__version__}, lightning {L.__version__}, "
              f"{'quick' if args.quick else 'full'} mode, `{' '.join(sys.argv)}`", ""]
    failed = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        check = Check(args.device, args.quick, Path(tmp))
        for key in args.only.split(","):
            title, section = SECTIONS[key]
            began = time.perf_counter()
            try:
                lines = section(check)
            except Exception as err:  # one line per failure; the other sections still run
                lines = [f"**FAILED**: {type(err).__name__}: {str(err).splitlines()[0]}"]
                traceback.print_exc()
            if any("**FAILED**" in line for line in lines):
                failed.append(key)
            report += [f"## {title}", "", *lines, "",
                       f"_{time.perf_counter() - began:.0f} s_", ""]
            args.out.write_text("\n".join(report))  # as far as it got
    report.append(f"Total {time.perf_counter() - start:.0f} s; "
                  f"{'failed: ' + ', '.join(failed) if failed else 'every section passed'}.")
    args.out.write_text("\n".join(report) + "\n")
    print(f"gpu_check: {args.out} ({'failed: ' + ', '.join(failed) if failed else 'all passed'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
