"""The trackers behind `logger=` (conf/logger/): Lightning's own loggers, plus the glue they
lack here. A run is one tracker run, grouped as `gan.report` groups them: by sweep, then by
variant (the swept keys other than `seed`), so filtering a sweep by variant in MLflow's or
W&B's UI gives `gan.report`'s groups. Images go through gan/sampling/trackers.py; the swept
keys and final metrics through gan/sweeps/hparams.py.

MLflow and W&B are optional extras; naming one that is not installed, or an MLflow server that
does not answer, is refused in one line before training starts."""

from __future__ import annotations

import logging
import netrc
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import MLFlowLogger, WandbLogger
from omegaconf import DictConfig

from gan.io.artefacts import swept_keys
from gan.io.config import build
from gan.io.usage import UsageError

log = logging.getLogger(__name__)


def build_loggers(cfg: DictConfig) -> list:
    """One Lightning logger per entry of `cfg.logger` (a dict name -> node, conf/logger/);
    a config from before the list holds one node with its own `_target_`."""
    node = cfg.get("logger")
    if not node:
        return []
    nodes = [node] if "_target_" in node else [n for n in node.values() if n is not None]
    return [build(n) for n in nodes]


def job_overrides() -> list[str]:
    """This job's overrides; in a sweep, only the swept ones (the keys that tell jobs apart:
    TensorBoard shows the first few hparams columns only)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return []
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        swept = set(swept_keys(hydra_cfg.sweep.dir))
        if swept:
            overrides = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] in swept]
    return overrides


@dataclass
class Identity:
    """Where a run sits: its sweep (None for a single run), its variant and seed, its name."""
    sweep: str | None
    variant: str
    seed: str
    name: str
    store: Path        # the sweep dir in a sweep, else the run dir: where local stores go


def identity() -> Identity:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = [o.lstrip("+~") for o in job_overrides()]
    seed = next((o.split("=", 1)[1] for o in overrides if o.startswith("seed=")), None)
    variant = ",".join(o for o in overrides if not o.startswith("seed=")) or "default"
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return Identity(None, variant, seed or "", run_dir.name, run_dir)
    sweep_dir = Path(hydra_cfg.sweep.dir).absolute()
    # Hydra's default sweep dir is <date>/<time>: name the sweep by both, not the time alone
    dated = re.fullmatch(r"\d{4}-\d{2}-\d{2}", sweep_dir.parent.name)
    sweep = f"{sweep_dir.parent.name}/{sweep_dir.name}" if dated else sweep_dir.name
    return Identity(sweep, variant, seed or "", run_dir.name, sweep_dir)


def _missing(package: str, extra: str) -> UsageError:
    return UsageError(f"logger={extra} needs the {package} package: pip install '.[{extra}]' "
                      f"(or pip install {package})")


def check_tracking_uri(uri: str) -> None:
    """An MLflow server that does not answer is refused now, in one line, not after MLflow's
    retries or at the end of training."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=5).close()
        except OSError as err:
            raise UsageError(f"logger.mlflow.tracking_uri={uri}: cannot reach "
                             f"{parsed.hostname}:{port} ({err.strerror or err}); start the "
                             f"server, or leave it null for a store in the run folder") from None
    elif parsed.scheme in ("sqlite", "file", ""):
        path = Path(parsed.path if parsed.scheme else uri)
        folder = path.parent if parsed.scheme == "sqlite" else path
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is None or not os.access(existing, os.W_OK):
            raise UsageError(f"logger.mlflow.tracking_uri={uri}: {existing} is not writable")


def mlflow_logger(tracking_uri: str | None = None, experiment_name: str | None = None,
                  **kwargs):
    """Lightning's MLFlowLogger, one run per job: experiment = the sweep (or `gan` for a
    single run), tags `group` (the variant), `seed`, `sweep` and `run_dir`. `tracking_uri`
    null: a SQLite store `mlflow.db` with artefacts in `mlartifacts/`, in the sweep dir (one
    store for the whole sweep) or the run dir (MLflow 3 keeps its plain-file store in
    maintenance and refuses it by default)."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise _missing("mlflow", "mlflow") from None
    me = identity()
    if tracking_uri is None:
        me.store.mkdir(parents=True, exist_ok=True)
        tracking_uri = f"sqlite:///{me.store / 'mlflow.db'}"
        kwargs.setdefault("artifact_location", (me.store / "mlartifacts").as_uri())
    check_tracking_uri(tracking_uri)
    tags = {"group": me.variant, "seed": me.seed, "sweep": me.sweep or "",
            "run_dir": str(Path(me.store if me.sweep is None else me.store / me.name))}
    return MLFlowLogger(experiment_name=experiment_name or me.sweep or "gan",
                        run_name=kwargs.pop("run_name", None) or me.name,
                        tracking_uri=tracking_uri,
                        tags={**tags, **(kwargs.pop("tags", None) or {})}, **kwargs)


def wandb_logged_in() -> bool:
    """An API key W&B would use: WANDB_API_KEY, or `wandb login`'s entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class FinishingWandbLogger(WandbLogger):
    """Ends its W&B run with the fit (Lightning's leaves it open until the process exits): the
    next job of an in-process sweep starts a run of its own, and an offline run's file is
    complete when the job returns."""

    def finalize(self, status: str) -> None:
        super().finalize(status)
        if self._experiment is not None and hasattr(self._experiment, "finish"):
            self._experiment.finish(exit_code=0 if status == "success" else 1)


def wandb_logger(project: str = "gan-lab", mode: str = "auto", **kwargs):
    """Lightning's WandbLogger, one run per job: `group` = the sweep, `job_type` = the variant,
    `name` = the job folder. `mode`: auto (WANDB_MODE if set, else online when logged in and
    offline otherwise), online or offline. An offline run stays in `<run dir>/wandb/`;
    `wandb sync` uploads it later."""
    try:
        import wandb
    except ImportError:
        raise _missing("wandb", "wandb") from None
    if mode not in ("auto", "online", "offline"):
        raise UsageError(f"logger.wandb.mode={mode!r}: use auto, online or offline")
    if mode == "auto":
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_logged_in() else "offline")
        mode = "offline" if mode == "dryrun" else mode  # what WandbLogger(offline=True) sets
    if wandb.run is not None:  # the previous job of an in-process sweep: its own run
        wandb.finish()
    me = identity()
    save_dir = kwargs.pop("save_dir", None) or str(me.store if me.sweep is None
                                                   else me.store / me.name)
    if mode != "online":
        log.warning("W&B: %s; this run is stored in %s/wandb/ (`wandb sync %s/wandb/offline-run-*`"
                    " uploads it)", "offline" if mode == "offline" else f"mode {mode}",
                    save_dir, save_dir)
    return FinishingWandbLogger(
        project=project, save_dir=save_dir, offline=mode == "offline",
        group=kwargs.pop("group", None) or me.sweep,
        job_type=kwargs.pop("job_type", None) or me.variant,
        name=kwargs.pop("name", None) or me.name,
        **({} if mode in ("online", "offline") else {"mode": mode}), **kwargs)
