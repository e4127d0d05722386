"""kill -9 a training run at random moments, resume it each time, and check nothing is lost.

    PYTHONPATH=$PWD python benchmarks/kill_loop.py [--trials 20] [--every 5] [--seed 0]

One run continues through every trial: each trial starts `python -m gan.train` (from the run's
`checkpoints/last.ckpt` after the first), waits until it trains, sleeps a random 0-3 s (so some
kills land inside a checkpoint write), and sends SIGKILL. Checked per trial:
- the run resumes: the checkpoint it left loads (gan.io.checkpoint.load_checkpoint) and did not
  go backwards;
- progress lost: D steps trained when killed (the child appends each finished step to
  `progress.txt` through the `Progress` callback below) minus D steps in the checkpoint, at
  most one checkpoint interval (`save_every_n_batches`);
- no temporary file is left: a kill inside a checkpoint write leaves `.last.ckpt.*.tmp`
  beside it, which the next start must remove; nothing may land in the child's own TMPDIR.
  (The last trial's partial file, if any, is left for the next start, which never comes.)
Exit status 0 only when every trial passes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L

from gan.io.checkpoint import load_checkpoint

ARGS = ["data=fake", "data.n=512", "data.batch_size=16", "trainer.accelerator=cpu",
        "trainer.max_epochs=100000", "trainer.enable_model_summary=false",
        "trainer.enable_progress_bar=false", "model=mlp", "model.generator.hidden=[32]",
        "model.discriminator.hidden=[32]", "n_fixed=16", "tricks=[instance_noise,ema]",
        "callbacks.samples.every_n_epochs=null", "callbacks.periodic.every_n_epochs=1000000",
        "+callbacks.progress._target_=benchmarks.kill_loop.Progress"]


class Progress(L.Callback):
    """In the child: append each finished D step to <run dir>/progress.txt, unbuffered (a
    SIGKILL loses nothing the kernel already has)."""

    def on_train_batch_end(self, trainer, pl_module, *args):
        with open(Path(trainer.default_root_dir) / "progress.txt", "a", buffering=1) as f:
            f.write(f"{pl_module.d_step}\n")


def trained_steps(run_dir: Path) -> int:
    lines = (run_dir / "progress.txt").read_text().split() if (
        run_dir / "progress.txt").is_file() else []
    return int(lines[-1]) if lines else 0


def trial(run_dir: Path, every: int, rng: random.Random, tmpdir: Path) -> dict:
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    resume = [f"ckpt_path={ckpt}"] if ckpt.is_file() else []
    before = load_checkpoint(ckpt)["gan_counters"]["d_step"] if resume else 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "TMPDIR": str(tmpdir)}
    stale = set((run_dir / "checkpoints").glob(".*.tmp"))  # a previous kill's partial write
    started = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gan.train", *ARGS, f"save_every_n_batches={every}",
         f"hydra.run.dir={run_dir}", *resume],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = run_dir / "status.json"
    while proc.poll() is None:  # until this process has started training
        if status.is_file() and status.stat().st_mtime > started and json.loads(
                status.read_text()).get("status") == "running":
            break
        time.sleep(0.02)
    still_there = [p.name for p in stale if p.exists()]  # the start must have removed them
    time.sleep(rng.uniform(0.0, 3.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    progress = trained_steps(run_dir)
    after = load_checkpoint(ckpt)["gan_counters"]["d_step"]  # raises if the file is broken
    return {"from": before, "checkpoint": after, "trained": max(progress, after),
            "lost": max(progress - after, 0), "ok": after >= before,
            "mid_write": bool(list((run_dir / "checkpoints").glob(".*.tmp"))),
            "temps": still_there + [p.name for p in tmpdir.iterdir()]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--every", type=int, default=5, help="save_every_n_batches")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=None, help="run dir (default: a temp dir)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(args.dir or tempfile.mkdtemp(prefix="kill_loop_"))
    run_dir, tmpdir = root / "run", root / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    results = []
    for i in range(args.trials):
        r = trial(run_dir, args.every, rng, tmpdir)
        results.append(r)
        print(f"trial {i + 1:2d}: resumed from d_step {r['from']:5d}, killed at ~{r['trained']:5d}"
              f", checkpoint {r['checkpoint']:5d}, lost {r['lost']:3d} batches"
              f"{', killed mid-write' if r['mid_write'] else ''}, temp files left "
              f"{r['temps'] or 'none'}", flush=True)
    resumed = sum(r["ok"] for r in results)
    worst = max(r["lost"] for r in results)
    temps = sum(len(r["temps"]) for r in results)
    mid_write = sum(r["mid_write"] for r in results)
    ok = resumed == len(results) and worst <= args.every and temps == 0
    print(f"{len(results)} kills: {resumed} resumed from an intact checkpoint; most progress "
          f"lost {worst} batches (interval {args.every}); {mid_write} killed mid-write; "
          f"temporary files left after the next start or in TMPDIR: {temps}; "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
