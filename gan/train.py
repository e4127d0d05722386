"""Train a GAN: `python -m gan.train [group=option ...] [key=value ...]`.

Compose the config, build every object from its `_target_`, fit, return the configured metric
(so a sweeper can optimise it). Everything a run writes goes to its Hydra run dir.
"""

from __future__ import annotations

import logging
import math
import traceback
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gan.checkpoint_io import AtomicCheckpointIO
from gan.compile import compile_nets
from gan.config import CONF_DIR, build
from gan.module import GAN

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
        config=OmegaConf.to_container(cfg, resolve=True),
        **shapes,
    )
    if cfg.get("compile"):
        compile_nets(module)
    return module, tricks


def fit(cfg: DictConfig) -> tuple[L.Trainer, GAN]:
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data)
    module, tricks = build_module(cfg, datamodule)
    if cfg.get("critic_norm"):  # the loss chose the critic's normalisation: say so
        log.info("loss=%s asks for a %s-normalised critic; D uses norm=%s",
                 cfg.loss._target_.rsplit(".", 1)[-1], cfg.critic_norm,
                 cfg.model.discriminator.get("norm", "n/a"))
    callbacks = [build(node) for node in (cfg.get("callbacks") or {}).values()]
    trainer = build(cfg.trainer, callbacks=callbacks + tricks, logger=build(cfg.logger),
                    plugins=[AtomicCheckpointIO()])
    if cfg.ckpt_path is not None and not Path(cfg.ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path} does not exist")
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
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


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        trainer, _ = fit(cfg)
        return objective(trainer, cfg.get("metric"))
    except Exception:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        # One diverged job must not end the sweep: record it in its run dir and go on.
        out = Path(HydraConfig.get().runtime.output_dir)
        (out / "FAILED.txt").write_text(traceback.format_exc())
        log.exception("job %s failed; see %s", HydraConfig.get().job.num, out / "FAILED.txt")
        return math.nan


if __name__ == "__main__":
    main()
