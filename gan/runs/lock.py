"""One owner per run folder, and every config the folder went through.

Two runs in one folder break each other (one deletes the other's temporary checkpoint, both
write status.json, metrics.json, curve.csv). So a run takes `<run dir>/.lock` before anything
is written there, Hydra's logs and `.hydra/` included (`RunFolder.on_run_start`, a Hydra
callback of gan.train), and drops it at exit:

- the lock is created with O_EXCL (atomic on local and NFS file systems) and holds the owner's
  pid, host and start time; a second run into a held folder is refused in one line naming them;
- a lock whose owner is gone (same host: no such pid; another host: no heartbeat for
  STALE_AFTER_S, the owner touches the file every HEARTBEAT_S) is taken over, with a line
  saying so: a run killed with -9 does not block its own resume;
- `.hydra/config.yaml` of the run before is kept as `.hydra/config.<n>.yaml` (and its
  overrides/hydra files), so the folder keeps every config it trained with; a run refused before
  its first step puts the previous config back (`restore_configs`).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shutil
import socket
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from gan.io.errors import UsageError, exit_for
from gan.io.files import check_output_dir

log = logging.getLogger(__name__)

LOCK = ".lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0
HYDRA_FILES = ("config", "overrides", "hydra")

_held: dict[Path, threading.Event] = {}  # run dir -> stops its heartbeat
_archived: dict[Path, int] = {}  # run dir -> the history number of the config before this run


class RunFolderBusy(UsageError):
    """Another live run owns the folder."""


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.now().isoformat(timespec="seconds")}


def read_lock(run_dir: str | os.PathLike) -> dict | None:
    try:
        return json.loads((Path(run_dir) / LOCK).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def is_stale(holder: dict | None, path: Path) -> bool:
    """Whether the owner named in the lock at `path` is gone."""
    if not holder or not isinstance(holder.get("pid"), int):
        return True  # unreadable: a write cut by a kill
    if holder.get("host") != socket.gethostname():
        try:
            return time.time() - path.stat().st_mtime > STALE_AFTER_S
        except FileNotFoundError:
            return True
    if holder["pid"] == os.getpid():  # this process, but not a lock it holds: a run it ended
        return path.parent.resolve() not in _held
    return not _alive(holder["pid"])


def _create(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(_me(), f)
    return True


def acquire(run_dir: str | os.PathLike, key: str = "hydra.run.dir") -> None:
    """Own `run_dir` (made if absent) or raise RunFolderBusy naming the live owner."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _held:
        return
    check_output_dir(run_dir, key)  # a read-only folder: one line, not a logging traceback
    path = run_dir / LOCK
    for _ in range(3):
        if _create(path):
            _hold(run_dir, path)
            return
        holder = read_lock(run_dir)
        if not is_stale(holder, path):
            raise RunFolderBusy(
                f"{key}={run_dir} is in use by another run (pid {holder['pid']} on "
                f"{holder.get('host')}, started {holder.get('started')}): wait for it, or "
                f"choose another {key}=")
        # Move the stale lock aside under a name of our own: of two runs taking over, only one
        # renames it; the other finds the new owner's lock on its next try.
        aside = path.with_name(f"{LOCK}.stale.{os.getpid()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            continue
        aside.unlink(missing_ok=True)
        print(f"gan.train: taking over {path}: its run (pid {(holder or {}).get('pid')} on "
              f"{(holder or {}).get('host')}, started {(holder or {}).get('started')}) is gone",
              file=sys.stderr, flush=True)
    raise RunFolderBusy(f"{key}={run_dir}: could not take its lock {path}")


def _hold(run_dir: Path, path: Path) -> None:
    stop = threading.Event()
    _held[run_dir] = stop

    def beat():  # another host judges the lock by its age
        while not stop.wait(HEARTBEAT_S):
            try:
                os.utime(path)
            except OSError:
                return

    threading.Thread(target=beat, daemon=True, name="run-lock-heartbeat").start()


def release(run_dir: str | os.PathLike) -> None:
    run_dir = Path(run_dir).resolve()
    stop = _held.pop(run_dir, None)
    if stop is None:
        return
    stop.set()
    holder = read_lock(run_dir)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        (run_dir / LOCK).unlink(missing_ok=True)


@atexit.register
def release_all() -> None:
    for run_dir in list(_held):
        release(run_dir)


def history_numbers(hydra_dir: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in hydra_dir.glob("config.*.yaml")
                  if (m := re.fullmatch(r"config\.(\d+)\.yaml", p.name)))


def archive_configs(run_dir: str | os.PathLike) -> int | None:
    """Copy `.hydra/{config,overrides,hydra}.yaml` of the run before to `<name>.<n>.yaml` (Hydra
    is about to overwrite them); the number n, or None for a fresh folder."""
    run_dir = Path(run_dir).resolve()
    hydra_dir = run_dir / ".hydra"
    if not (hydra_dir / "config.yaml").is_file():
        return None
    n = (history_numbers(hydra_dir) or [0])[-1] + 1
    for name in HYDRA_FILES:
        if (hydra_dir / f"{name}.yaml").is_file():
            shutil.copy2(hydra_dir / f"{name}.yaml", hydra_dir / f"{name}.{n}.yaml")
    _archived[run_dir] = n
    return n


def restore_configs(run_dir: str | os.PathLike) -> bool:
    """A run refused before its first step: put back the config of the run before (its history
    copy goes, it is the current one again). False for a fresh folder (nothing to restore)."""
    run_dir = Path(run_dir).resolve()
    n = _archived.pop(run_dir, None)
    if n is None:
        return False
    hydra_dir = run_dir / ".hydra"
    for name in HYDRA_FILES:
        copy = hydra_dir / f"{name}.{n}.yaml"
        if copy.is_file():
            os.replace(copy, hydra_dir / f"{name}.yaml")
    return True


class RunFolder(Callback):
    """gan.train's Hydra callback: the run folder's lock and config history, taken before Hydra
    writes its logs and `.hydra/` there. A sweep job takes its folder's lock in gan.train."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        run_dir = Path(config.hydra.run.dir)
        try:
            acquire(run_dir)
        except UsageError as err:
            raise exit_for("train", err, debug=False) from None
        archive_configs(run_dir)

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        release(config.hydra.run.dir)
