"""The one place a run is wired: the module, its tricks, the callbacks and the Trainer, from a
composed config plus any extra callbacks. `gan.train`, `gan.bench` and the tests all come
through here, so what a test or a benchmark trains is what a user trains.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from gan.core.module import GAN
from gan.io.artefacts import metric_value, read_metrics, run_verdict, update_status
from gan.io.checkpoint import AtomicCheckpointIO, load_checkpoint, refuse_retired
from gan.io.config import build
from gan.io.usage import usage_error
from gan.runs.checks import check_config
from gan.runs.compile import compile_mode, compile_nets
from gan.runs.init_from import InitFrom
from gan.runs.quiet import quiet_adverts
from gan.runs.resources import job_resources
from gan.runs.resume import Interrupted, Resumable, _active, finish_without_training
from gan.runs.resume_config import ApplyOptimizerSettings, check_resume
from gan.runs.thin import idle_hooks_off, progress_bar
from gan.runs.trackers import build_loggers
from gan.timing.clock import OnTheClock

log = logging.getLogger(__name__)


def build_module(cfg: DictConfig, datamodule=None) -> tuple[GAN, list]:
    """The GAN module and its tricks (which are also callbacks), wired from a composed config.
    Every entry point, test and benchmark builds a module through here."""
    datamodule = datamodule if datamodule is not None else build(cfg.data)
    tricks = [build(node) for node in (cfg.get("tricks") or {}).values()]
    size = datamodule.train_size() if hasattr(datamodule, "train_size") else None
    if size is not None:  # checked against the data, before anything is loaded or trained
        for trick in tricks:
            trick.fit_data(size)
    # A pseudo-label trick (self-conditioning) sets how many labels the nets embed.
    own = [t.label_count for t in tricks if t.label_count is not None]
    shapes = {"img_shape": datamodule.img_shape,
              "num_classes": own[0] if own else datamodule.num_classes}
    d_shape = shapes["img_shape"]  # D's input: a trick may reshape it (PacGAN packs images)
    for trick in tricks:
        d_shape = trick.d_img_shape(d_shape)
    module = GAN(
        generator=build(cfg.model.generator, **shapes),
        discriminator=build(cfg.model.discriminator, **{**shapes, "img_shape": d_shape}),
        loss=build(cfg.loss),
        optimizer_g=build(cfg.optim.generator),
        optimizer_d=build(cfg.optim.discriminator),
        tricks=tricks,
        n_fixed=cfg.n_fixed,
        seed=cfg.seed,
        max_consecutive_skips=cfg.get("guard", {}).get("max_consecutive_skips", 20),
        config=stored_config(cfg, datamodule),
        # how the trained G is drawn (+sampler=truncation|drs): part of the model's `draw`
        sampler=build(cfg.sampler) if cfg.get("sampler") else None,
        **shapes,
    )
    mode = compile_mode(cfg.get("compile"))
    if mode is not None:
        compile_nets(module, mode)
    return module, tricks


def stored_config(cfg: DictConfig, datamodule) -> dict:
    """The resolved config a checkpoint carries, with the dataset's registry name
    (`data.name`): entry points that read a checkpoint know its data without a class path."""
    config = OmegaConf.to_container(cfg, resolve=True)
    if getattr(datamodule, "name", None):
        config["data"]["name"] = datamodule.name
    return config


def fit(cfg: DictConfig, callbacks: Sequence[L.Callback] = (),
        datamodule=None) -> tuple[L.Trainer, GAN]:
    """Build and train, with `callbacks` added after the configured ones (tests and benchmarks
    observe a run this way). Bad input (a ValueError/FileNotFoundError raised before the first
    training step, while building or loading data) comes out as one-line UsageError."""
    check_config(cfg)
    with usage_errors():
        L.seed_everything(cfg.seed, workers=True)
        datamodule = datamodule if datamodule is not None else build(cfg.data)
        module, tricks = build_module(cfg, datamodule)
    with usage_errors(until_started=module):
        return _train(cfg, module, tricks, datamodule, list(callbacks))


@contextmanager
def usage_errors(until_started: GAN | None = None):
    """Bad input raised in the block comes out as one-line UsageError; once `until_started`
    has begun training (its `started`), a failure is not bad input and keeps its traceback."""
    try:
        yield
    except Exception as err:
        usage = usage_error(err)
        if usage is None or getattr(until_started, "started", False):
            raise
        raise usage from err


def build_trainer(cfg: DictConfig, callbacks: list[L.Callback], **device_kwargs) -> L.Trainer:
    """The Trainer of a run: the configured callbacks and budget, then `callbacks` (the module's
    tricks, Resumable, extras), the configured loggers (gan/runs/trackers.py), and atomic
    checkpoint writes. The only place in gan/ that builds a Trainer. Thin per batch
    (gan/runs/thin.py): the progress bar updates at log boundaries, and hooks a callback does
    not override are not dispatched."""
    quiet_adverts()  # no "💡 Tip" advertisements from Lightning on the console
    configured = [build(node) for node in (cfg.get("callbacks") or {}).values()
                  if node is not None]
    clock = build(cfg.budget) if cfg.get("budget") is not None else None
    if clock is not None:  # stops the run; records what it spent in status.json
        configured.append(clock)
    for callback in configured + callbacks:  # evaluation, grids, walks: paused on its clock
        if isinstance(callback, OnTheClock):
            callback.clock = clock
    if cfg.trainer.get("enable_progress_bar", True):  # Lightning's bar, updated on boundaries
        configured.append(progress_bar())
    trainer = build(cfg.trainer, callbacks=configured + callbacks,
                    logger=build_loggers(cfg) or False, plugins=[AtomicCheckpointIO()],
                    **device_kwargs)
    idle_hooks_off(trainer.callbacks)  # per-batch hooks nobody overrides: not dispatched
    return trainer


def _train(cfg: DictConfig, module: GAN, tricks: list, datamodule,
           extra: list) -> tuple[L.Trainer, GAN]:
    if cfg.get("critic_norm"):  # the loss chose the critic's normalisation: say so
        log.info("loss=%s asks for a %s-normalised critic; D uses norm=%s",
                 cfg.loss._target_.rsplit(".", 1)[-1], cfg.critic_norm,
                 cfg.model.discriminator.get("norm", "n/a"))
    resumable = Resumable(cfg.get("save_every_n_batches"))  # signals, RNG, status: always on
    _active.append(resumable)
    try:
        return _fit_with(cfg, module, tricks, datamodule, resumable, extra)
    finally:
        _active.remove(resumable)


def _fit_with(cfg: DictConfig, module: GAN, tricks: list, datamodule, resumable: Resumable,
              extra: list) -> tuple[L.Trainer, GAN]:
    if cfg.ckpt_path is not None:  # a resume goes on with the config it was trained with
        ckpt = load_checkpoint(cfg.ckpt_path)
        refuse_retired(ckpt["state_dict"], cfg.ckpt_path)  # before its config's differences
        saved = ckpt["hyper_parameters"]["config"]
        roles = check_resume(saved, cfg)
        extra = extra + ([ApplyOptimizerSettings(cfg, roles)] if roles else [])
    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    sweep_dir = hydra_cfg.sweep.dir if hydra_cfg and hydra_cfg.mode == RunMode.MULTIRUN else None
    # A parallel sweep job: threads = cores / parallel jobs, and a GPU of its own.
    with job_resources(cfg, hydra_cfg, sweep_dir) as device_kwargs:
        # init_from loads weights in `setup`, before the tricks re-parametrise the nets: first.
        init = InitFrom(cfg.get("init_from"), cfg.get("init_from_parts") or ("generator",
                                                                               "discriminator"))
        trainer = build_trainer(cfg, [init, *tricks, resumable, *extra], **device_kwargs)
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
    final = read_metrics(trainer.default_root_dir) if trainer.is_global_zero else {}
    values = {**trainer.callback_metrics, **{f"val/{k}": v for k, v in final.items()}}
    if name not in values:  # e.g. val/fid with data=fake: the run itself is fine
        log.warning("metric=%s was not logged; logged keys: %s", name, ", ".join(sorted(values)))
        return None
    return float(values[name])


def finished(out: Path, name: str | None) -> tuple[bool, float | None]:
    """(True, its metric) when the run dir `out` already holds a finished run (`skip_done`)."""
    if run_verdict(out) not in ("ok", "diverged"):
        return False, None
    return True, (metric_value(read_metrics(out), name) if name else None)
