"""Train a GAN: `python -m gan.train [group=option ...] [key=value ...]`.

Compose the config, build every object from its `_target_`, fit, return the configured metric
(so a sweeper can optimise it). Everything a run writes goes to its Hydra run dir.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import traceback
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from gan.checkpoint import AtomicCheckpointIO
from gan.checks import UsageError, check_config, usage_error
from gan.compile import compile_nets
from gan.config import CONF_DIR, build
from gan.guard import Diverged
from gan.launch import job_resources
from gan.module import GAN
from gan.resume import Resumable, finish_without_training, resume_command
from gan.status import read_status, update_status

log = logging.getLogger(__name__)


def build_module(cfg: DictConfig, datamodule=None) -> tuple[GAN, list]:
    """The GAN module and its tricks (which are also callbacks), wired from a composed config.
    Every entry point, test and benchmark builds a module through here."""
    datamodule = datamodule if datamodule is not None else build(cfg.data)
    shapes = {"img_shape": datamodule.img_shape, "num_classes": datamodule.num_classes}
    tricks = [build(node) for node in (cfg.get("tricks") or {}).values()]
    module = GAN(
        generator=build(cfg.model.generator, **shapes),
        discriminator=build(cfg.model.discriminator, **shapes),
        loss=build(cfg.loss),
        optimizer_g=build(cfg.optim.generator),
        optimizer_d=build(cfg.optim.discriminator),
        tricks=tricks,
        n_fixed=cfg.n_fixed,
        seed=cfg.seed,
        max_consecutive_skips=cfg.get("guard", {}).get("max_consecutive_skips", 20),
        config=OmegaConf.to_container(cfg, resolve=True),
        **shapes,
    )
    if cfg.get("compile"):
        compile_nets(module)
    return module, tricks


class Interrupted(SystemExit):
    """SIGTERM or Ctrl-C stopped training after a checkpoint at that step was written."""

    def __init__(self, signal_name: str, ckpt_path: Path):
        super().__init__(130 if signal_name == "SIGINT" else 143)  # 128 + the signal's number
        self.signal_name, self.ckpt_path = signal_name, ckpt_path

    def __reduce__(self):  # a joblib job sends it to the sweep process: rebuild from these
        return type(self), (self.signal_name, self.ckpt_path)


def fit(cfg: DictConfig) -> tuple[L.Trainer, GAN]:
    """Build and train. Bad input (a ValueError/FileNotFoundError raised before the first
    training step, while building or loading data) comes out as one-line UsageError."""
    check_config(cfg)
    built: dict[str, GAN] = {}
    try:
        return _fit(cfg, built)
    except Exception as err:
        usage = usage_error(err)
        if usage is None or getattr(built.get("module"), "started", False):
            raise  # a failure during training is not bad input: keep its traceback
        raise usage from err


def _fit(cfg: DictConfig, built: dict) -> tuple[L.Trainer, GAN]:
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data)
    module, tricks = build_module(cfg, datamodule)
    built["module"] = module
    if cfg.get("critic_norm"):  # the loss chose the critic's normalisation: say so
        log.info("loss=%s asks for a %s-normalised critic; D uses norm=%s",
                 cfg.loss._target_.rsplit(".", 1)[-1], cfg.critic_norm,
                 cfg.model.discriminator.get("norm", "n/a"))
    callbacks = [build(node) for node in (cfg.get("callbacks") or {}).values()]
    if cfg.get("budget") is not None:  # stops the run; records what it spent in status.json
        callbacks.append(build(cfg.budget))
    resumable = Resumable(cfg.get("save_every_n_batches"))  # signals, RNG, status: always on
    if cfg.ckpt_path is not None and not Path(cfg.ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path} does not exist")
    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    sweep_dir = hydra_cfg.sweep.dir if hydra_cfg and hydra_cfg.mode == RunMode.MULTIRUN else None
    # A parallel sweep job: threads = cores / parallel jobs, and a GPU of its own.
    with job_resources(cfg, hydra_cfg, sweep_dir) as device_kwargs:
        trainer = build(cfg.trainer, callbacks=callbacks + tricks + [resumable],
                        logger=build(cfg.logger), plugins=[AtomicCheckpointIO()],
                        **device_kwargs)
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        except SIGTERMException:  # Lightning's exit after a signal; Resumable saved last.ckpt
            raise Interrupted(resumable.signal or "SIGTERM", resumable.last_path) from None
        if cfg.ckpt_path is not None and not resumable.started:
            finish_without_training(trainer, module)  # killed after the last checkpoint
    if trainer.is_global_zero:
        update_status(trainer.default_root_dir, status="done", g_step=module.g_step,
                      d_step=module.d_step, epoch=trainer.current_epoch)
    return trainer, module


def objective(trainer: L.Trainer, name: str | None) -> float | None:
    """The value of `metric` after training: the final metrics (metrics.json) where a callback
    computed them, else the last logged value (e.g. `train/g_loss`)."""
    if name is None:
        return None
    values = dict(trainer.callback_metrics)
    for callback in trainer.callbacks:
        values.update(getattr(callback, "final", {}))
    if name not in values:  # e.g. val/fid with data=fake: the run itself is fine
        log.warning("metric=%s was not logged; logged keys: %s", name, ", ".join(sorted(values)))
        return None
    return float(values[name])


def finished(out: Path, name: str | None) -> tuple[bool, float | None]:
    """(True, its metric) when the run dir `out` already holds a finished run (`skip_done`)."""
    if read_status(out).get("status") not in ("done", "diverged"):
        return False, None
    metrics = out / "metrics.json"
    values = json.loads(metrics.read_text())["metrics"] if metrics.is_file() else {}
    return True, (float(values[name]) if name in values else None)


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
