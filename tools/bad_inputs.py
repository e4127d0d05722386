"""A sweep of bad inputs across the entry points, each run as a user runs it
(`python -m gan.<entry> ...` in a fresh process, from an empty folder), classified:

- `one-line`: exit != 0, no traceback, one error line on stderr (log records aside);
- `traceback`: a Python traceback was printed;
- `lines`: exit != 0, no traceback, but several error lines (Hydra's multi-line messages);
- `accepted`: exit 0: the bad input was taken and the run went on (a silent wrong result);
- `timeout`: no answer in 600 s (a hang);
- `help` / `handled`: the expected good outcome of `--help`, of a report with a corrupt file,
  and of a case marked "works" (an input that must be taken: a 16-bit PNG, a study holding a
  poisoned trial); `not handled`: it was refused or stopped.

    python tools/bad_inputs.py                     # this checkout
    python tools/bad_inputs.py --code /work/base   # another checkout's gan/ (e.g. before a change)
    python tools/bad_inputs.py --cases 46:         # only the cases from the 47th on (or 50,51)

Every case uses the checkpoint written before the layered packages (tests/fixtures), which
both old and new code load, so a case tests its one bad value and nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "before_layers"
HOLDERS: list[subprocess.Popen] = []  # processes holding a lock for a case

CASES = [  # (entry point, arguments); {x}: a file made by make_files
    ("train", ["data=fake", "ckpt_path={text}"]),
    ("train", ["data=fake", "ckpt_path={dir}"]),
    ("train", ["data=fake", "ckpt_path={empty}"]),
    ("train", ["data=fake", "init_from={text}", "trainer.max_epochs=0"]),
    ("train", ["data=fake", "trainer.accelerator=gpu"]),
    ("train", ["no_such_key=1"]),
    ("train", ["--help"]),
    ("generate", ["ckpt_path={ckpt}", "n=-5"]),
    ("generate", ["ckpt_path={ckpt}", "n=abc"]),
    ("generate", ["ckpt_path={ckpt}", "batch_size=0"]),
    ("generate", ["ckpt_path={ckpt}", "label=3.5"]),
    ("generate", ["ckpt_path={ckpt}", "device=cuda"]),
    ("generate", ["ckpt_path={text}"]),
    ("generate", ["ckpt_path={dir}"]),
    ("generate", ["ckpt_path={empty}"]),
    ("generate", ["ckpt_path={ckpt}", "out={file}/x.png"]),
    ("generate", ["ckpt_path={ckpt}", "out=x.gif"]),
    ("generate", ["--help"]),
    ("evaluate", ["samples={samples}", "n=-5"]),
    ("evaluate", ["samples={samples}", "n=abc"]),
    ("evaluate", ["samples={empty}"]),
    ("evaluate", ["samples={text}"]),
    ("evaluate", ["ckpt_path={dir}"]),
    ("evaluate", ["ckpt_path={text}"]),
    ("evaluate", ["ckpt_path={mnist_ckpt}", "data=fashion_mnist", "n=64"]),
    ("evaluate", ["--help"]),
    ("project", ["ckpt_path={text}", "input={img}"]),
    ("project", ["ckpt_path={ckpt}", "input={text}"]),
    ("project", ["ckpt_path={ckpt}", "input={img}", "label=3.5"]),
    ("project", ["ckpt_path={ckpt}", "input={img}", "device=cuda"]),
    ("project", ["ckpt_path={dir}", "input={img}"]),
    ("project", ["--help"]),
    ("export", ["ckpt_path={text}", "format=torchscript"]),
    ("export", ["ckpt_path={ckpt}", "format=torchscript", "out={onnx}"]),
    ("export", ["ckpt_path={dir}", "format=torchscript"]),
    ("export", ["--help"]),
    ("bench", ["devices=[cuda]", "steps=1", "warmup=0", "repeats=1"]),
    ("bench", ["steps=0"]),
    ("bench", ["steps=abc"]),
    ("bench", ["json={file}/b.json", "steps=1", "warmup=0", "repeats=1",
               "models={{mlp:[experiment=seed]}}", "overrides=[data=fake]"]),
    ("bench", ["--help"]),
    ("report", ["{corrupt_sweep}"]),
    ("report", ["{sweep}", "report.bogus=1"]),
    ("report", ["--help"]),
    ("classifier", ["epochs=0"]),
    ("classifier", ["--help"]),
    # round three (issue #32): folders never overwritten, locks, the search, the data
    ("train", ["data=fake", "hydra.run.dir={finished}", "trainer.max_epochs=1",
               "trainer.limit_train_batches=1"]),
    ("train", ["-m", "data=fake", "seed=7", "hydra.sweep.dir={old_sweep}",
               "trainer.max_epochs=1", "trainer.limit_train_batches=1"]),
    ("train", ["-m", "data=fake", "seed=0,1", "hydra.sweep.dir=/proc/gan_sweep"]),
    ("train", ["data=fake", "hydra.run.dir={locked}"]),
    ("train", ["data=fake", "resume.allow=[optim.lr_x]", "trainer.max_epochs=1",
               "trainer.limit_train_batches=1"]),
    ("train", ["data=fake", "resume.allow=optim.lr_g", "trainer.max_epochs=1",
               "trainer.limit_train_batches=1"]),
    ("train", ["data=fake", "data.n=64", "tricks.self_cond.clusters=100",
               "tricks.self_cond.n_images=100", "trainer.max_epochs=1",
               "trainer.limit_train_batches=1"]),
    ("generate", ["ckpt_path={ckpt}", "sampler=truncation", "sampler.psi=abc"]),
    ("search", ["hparams_search=optuna", "hydra.sweep.dir={study}", "optim.lr_g=abc"]),
    ("search", ["hparams_search=optuna", "hydra.sweep.dir={study}", "optim.lr_g=10"]),
    ("search", ["hparams_search=optuna", "hydra.sweep.dir={study}", "data.batch_size=100"]),
    ("search", ["hparams_search=optuna", "hydra.sweep.dir={bad_journal}", "optim.lr_g=1e-4"]),
    ("train", ["-m", "hparams_search=optuna", "hydra.sweep.dir={bad_journal}",
               "hydra.sweeper.n_trials=1", "data=fake"]),
    ("project", ["ckpt_path={mnist_ckpt}", "input={png16}", "projection.steps=2",
                 "projection.explore_steps=1", "out=p16"], "works"),
    ("project", ["ckpt_path={mnist_ckpt}", "input={clear_png}", "projection.steps=2",
                 "projection.explore_steps=1", "out=pclear"], "works"),
    ("train", ["-m", "hparams_search=optuna", "hydra.sweep.dir={poisoned}",
               "hydra.sweeper.n_trials=1", "data=fake", "recipe=unconditional", "model=mlp",
               "trainer.max_epochs=1", "trainer.limit_train_batches=1", "metric=null"], "works"),
]


def make_files(tmp: Path) -> dict[str, str]:
    (tmp / "text.ckpt").write_text("hello, not a checkpoint\n")
    (tmp / "empty.pt").write_bytes(b"")
    (tmp / "folder").mkdir()
    (tmp / "a_file").write_text("x")
    (tmp / "g.onnx").write_bytes(b"\x08\x07\x12\x07pytorch fake onnx")
    from PIL import Image

    Image.new("L", (64, 64), 255).save(tmp / "img.png")
    torch.save(torch.rand(64, 1, 28, 28) * 2 - 1, tmp / "samples.pt")
    ckpt = FIXTURE / "run" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True)
    saved["hyper_parameters"]["config"]["data"]["name"] = "mnist"  # scored against fashion_mnist
    torch.save(saved, tmp / "mnist.ckpt")
    shutil.copytree(FIXTURE / "sweep", tmp / "sweep")
    shutil.copytree(FIXTURE / "sweep", tmp / "corrupt")
    for i, run in enumerate(sorted(p for p in (tmp / "corrupt").iterdir() if p.is_dir())):
        if i == 0:
            (run / "metrics.json").write_text('{"metrics": {"val/fid": 2')
    files = round_three_files(tmp)
    return {**files, "text": str(tmp / "text.ckpt"), "empty": str(tmp / "empty.pt"),
            "dir": str(tmp / "folder"), "file": str(tmp / "a_file"), "onnx": str(tmp / "g.onnx"),
            "img": str(tmp / "img.png"), "samples": str(tmp / "samples.pt"), "ckpt": str(ckpt),
            "mnist_ckpt": str(tmp / "mnist.ckpt"), "sweep": str(tmp / "sweep"),
            "corrupt_sweep": str(tmp / "corrupt")}


def round_three_files(tmp: Path) -> dict[str, str]:
    """A finished run, a sweep from before the sweep record, a folder locked by a live process
    that is not gan, studies (good, corrupt, poisoned), a 16-bit and a transparent PNG."""
    import numpy as np
    import optuna
    from PIL import Image, ImageDraw

    shutil.copytree(FIXTURE / "run", tmp / "finished")
    shutil.copytree(FIXTURE / "sweep", tmp / "old_sweep")
    (tmp / "locked").mkdir()
    holder = subprocess.Popen(["sleep", "3600"])  # ended by main()
    HOLDERS.append(holder)
    (tmp / "locked" / ".lock").write_text(json.dumps({"pid": holder.pid, "host": os.uname(
    ).nodename, "started": "2026-12-07T01:00:00"}))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for name in ("study", "poisoned"):
        (tmp / name).mkdir()
        study = optuna.create_study(study_name="gan", storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp / name / "optuna.journal"))))
    study.enqueue_trial({"optim.lr_g": "abc"})  # around gan.search's check: a poisoned trial
    (tmp / "bad_journal").mkdir()
    (tmp / "bad_journal" / "optuna.journal").write_text(
        '{"op_code": 0, "worker_id": "w", "study_name": "gan", "directions": [1]}\n'
        '{{{ half a line\n{"op_code": 5}\n')
    deep = np.full((64, 64), 60000, np.uint16)
    deep[10:50, 28:34] = 2000
    Image.fromarray(deep).save(tmp / "deep.png")
    clear = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(clear).line((20, 10, 40, 50), fill=(255, 255, 255, 255), width=5)
    clear.save(tmp / "clear.png")
    return {"finished": str(tmp / "finished"), "old_sweep": str(tmp / "old_sweep"),
            "locked": str(tmp / "locked"), "study": str(tmp / "study"),
            "poisoned": str(tmp / "poisoned"), "bad_journal": str(tmp / "bad_journal"),
            "png16": str(tmp / "deep.png"), "clear_png": str(tmp / "clear.png")}


def classify(args: list[str], rc: int, out: str, err: str, works: bool = False) -> str:
    if works:
        return "handled" if rc == 0 and "Traceback" not in out + err else "not handled"
    if "--help" in args:
        return "help" if rc == 0 and "Traceback" not in out + err else "traceback"
    if "Traceback" in out + err:
        return "traceback"
    if rc == -1:
        return "timeout"
    if any("corrupt" in a for a in args):  # the report must be written, the run named
        return "handled" if rc == 0 and "unreadable" in out else "not handled"
    if rc == 0:
        return "accepted"
    errors = [line for line in err.splitlines() if line.strip() and not line.startswith(
        ("[20", "Seed set", "  warnings.warn", "GPU available", "TPU available", "HPU available",
         "💡"))]
    return "one-line" if len(errors) == 1 else "lines"


def run_case(code: Path, files: dict, tmp: Path, i: int, entry: str, args: list[str],
             expect: str = "") -> dict:
    args = [a.format(**files) for a in args]
    cwd = tmp / f"case{i}"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(code), "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": ""}
    try:
        proc = subprocess.run([sys.executable, "-m", f"gan.{entry}", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=600)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = -1, "", "timeout"
    last = [line for line in err.strip().splitlines() if line.strip()][-1:] or [""]
    return {"entry": entry, "args": " ".join(a.replace(str(tmp), "$TMP") for a in args),
            "rc": rc, "class": classify(args, rc, out, err, works=expect == "works"),
            "last": last[0][:160].replace(str(tmp), "$TMP")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", default=str(REPO), help="the checkout whose gan/ runs")
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--json", help="also write the records here")
    parser.add_argument("--cases", default=":", help="a slice of CASES, e.g. 46: (the newest), "
                        "or indices: 50,51")
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bad_inputs."))
    files = make_files(tmp)
    numbered = [(i, *case) for i, case in enumerate(CASES)]
    chosen = ([numbered[int(i)] for i in opts.cases.split(",")] if ":" not in opts.cases else
              numbered[slice(*[int(x) if x else None for x in opts.cases.split(":")])])
    with ThreadPoolExecutor(opts.jobs) as pool:
        records = list(pool.map(lambda c: run_case(Path(opts.code), files, tmp, *c),
                                chosen))
    for holder in HOLDERS:
        holder.kill()
        holder.wait()
    counts: dict[str, int] = {}
    for r in records:
        counts[r["class"]] = counts.get(r["class"], 0) + 1
        print(f"{r['class']:<10} rc={r['rc']:<4} gan.{r['entry']} {r['args']}\n"
              f"           {r['last']}")
    print(f"\n{len(records)} cases, code from {opts.code}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if opts.json:
        Path(opts.json).write_text(json.dumps({"code": opts.code, "counts": counts,
                                               "records": records}, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
