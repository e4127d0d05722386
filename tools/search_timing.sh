#!/usr/bin/env bash
# The search's wall time, measured (docs/search.md "Measured"): the same N (4) trials of a tiny
# search on real MNIST run (a) by one worker, (b) by two workers side by side on one journal
# file, (c) by one worker with the median pruner. The sampler is seeded per trial number and
# its first 10 trials are random, so the three arms train the same N configs.
#   GAN_DATA_DIR=/path/to/data bash tools/search_timing.sh [out dir]
# Every worker trains with 1 torch thread (SERIAL_THREADS=2 gives the one-worker arms both cores:
# on a loaded machine two threads per process thrash, and the ratio then measures that).
# Resumable: an arm whose study already holds its N finished trials is not run again (its time
# stays in times.tsv); an arm cut short resumes its study.
set -euo pipefail
OUT=${1:-outputs/search_timing}
N=${N:-4}   # trials per arm
PY=${PYTHON:-python}
mkdir -p "$OUT"
TINY=(recipe=unconditional data=mnist model=mlp "model.generator.hidden=[128,256]" "model.discriminator.hidden=[256,128]"
      budget=images budget.value=${IMAGES:-2000} callbacks.metrics.every_n_epochs=null
      callbacks.metrics.every_n_images=$(( ${IMAGES:-2000} / 4 )) callbacks.metrics.n=200 callbacks.metrics.n_final=500
      callbacks.samples=null callbacks.interpolation=null callbacks.periodic=null
      trainer.enable_progress_bar=false trainer.enable_model_summary=false)

finished() {  # trials of study $1 that ended (complete, pruned or failed)
  "$PY" - "$OUT/$1" "$1" <<'PY'
import sys
from gan.sweeps.storage import load_study, storage_url
try:
    study = load_study(storage_url(None, sys.argv[1]), sys.argv[2])
    print(sum(t.state.is_finished() for t in study.trials))
except Exception:
    print(0)
PY
}

arm() {  # arm name, workers, threads, pruner, pruner settings...
  local name=$1 workers=$2 threads=$3 pruner=$4
  shift 4
  if [ "$(finished "$name")" -ge "$N" ]; then echo "$name: done before"; return; fi
  local start=$SECONDS load
  load=$(cut -d' ' -f1 /proc/loadavg)  # the machine is shared: say how busy it was
  for w in $(seq 1 "$workers"); do
    "$PY" -m gan.train -m hparams_search=optuna "${TINY[@]}" threads="$threads" \
      hydra/sweeper/pruner="$pruner" "$@" \
      hydra.sweeper.study_name="$name" hydra.sweep.dir="$OUT/$name" \
      hydra.sweeper.max_trials=$N hydra.sweeper.n_trials=$N > "$OUT/$name.worker$w.log" 2>&1 &
  done
  wait
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$workers" "$threads" "$pruner" \
    $((SECONDS - start)) "$load" "$(cut -d' ' -f1 /proc/loadavg)" >> "$OUT/times.tsv"
}

arm serial 1 "${SERIAL_THREADS:-1}" none
arm parallel 2 1 none
arm pruned 1 "${SERIAL_THREADS:-1}" median hydra.sweeper.pruner.n_startup_trials=1
"$PY" - "$OUT" <<'PY'
import sys, json
from pathlib import Path
from gan.io.artefacts import read_status
from gan.sweeps.storage import load_study, storage_url
out = Path(sys.argv[1])
for name in ("serial", "parallel", "pruned"):
    study = load_study(storage_url(None, out / name), name)
    states = [t.state.name for t in study.trials]
    walls = {}
    for run in (out / name).glob("*/status.json"):
        walls[run.parent.name] = read_status(run.parent).get("wall_s")
    print(name, {s: states.count(s) for s in set(states)},
          "trial seconds:", sorted(round(t.duration.total_seconds()) for t in study.trials
                                   if t.duration),
          "best:", round(study.best_value, 2) if any(s == "COMPLETE" for s in states) else None)
print((out / "times.tsv").read_text())
PY
