"""Train a GAN: `python -m gan.train [group=option ...] [key=value ...]`.

Compose the config, build every object from its `_target_`, fit, return the configured metric
(so a sweeper can optimise it). Everything a run writes goes to its Hydra run dir.
"""

from __future__ import annotations

import logging
import math
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gan.core.guard import Diverged
from gan.io.artefacts import read_status, update_status
from gan.io.config import CONF_DIR
from gan.io.errors import UsageError
from gan.runs.resume import resume_command
from gan.runs.wiring import Interrupted, finished, fit, objective
from gan.sweeps.pruning import Pruned

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    out = Path(HydraConfig.get().runtime.output_dir)
    if cfg.get("skip_done"):  # a rerun sweep or study: finished jobs stay, cut ones go on
        done, value = finished(out, cfg.get("metric"))
        if done:
            log.info("skip_done: %s already finished (metric=%s); not training again", out, value)
            return value
        last = out / "checkpoints" / "last.ckpt"
        if cfg.ckpt_path is None and last.is_file():
            log.info("skip_done: resuming the cut run in %s from %s", out, last)
            cfg.ckpt_path = str(last)
    try:
        trainer, _ = fit(cfg)
        return objective(trainer, cfg.get("metric"))
    except Interrupted as stop:
        print(f"{stop.signal_name}: training stopped; checkpoint at this step in "
              f"{stop.ckpt_path}. Resume with: {resume_command(stop.ckpt_path)}",
              file=sys.stderr, flush=True)
        raise
    except (UsageError, Diverged) as err:
        if isinstance(err, Diverged):  # the last good checkpoint stays; say how it ended
            update_status(out, status="diverged", reason=str(err))
        else:  # refused before training: the run dir says why, as for any other failure
            update_status(out, status="failed", error=str(err)[:300])
        if HydraConfig.get().mode == RunMode.MULTIRUN:  # the sweep goes on
            (out / "FAILED.txt").write_text(f"{err}\n")
            log.error("job %s: %s", HydraConfig.get().job.num, err)
            return math.nan
        print(f"gan.train: {err}", file=sys.stderr)  # one line, no traceback
        sys.exit(1 if isinstance(err, Diverged) else 2)
    except Pruned as stop:  # the search's pruner stopped a hopeless trial: not a failure
        update_status(out, status="pruned", reason=str(stop))
        log.info("job %s: %s", HydraConfig.get().job.num, stop)
        return math.nan
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0]
        if read_status(out).get("status") != "diverged":  # the guard's finding stays
            update_status(out, status="failed", error=f"{type(err).__name__}: {first}"[:300])
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        # One diverged job must not end the sweep: record it in its run dir and go on.
        (out / "FAILED.txt").write_text(traceback.format_exc())
        log.exception("job %s failed; see %s", HydraConfig.get().job.num, out / "FAILED.txt")
        return math.nan


if __name__ == "__main__":
    main()
