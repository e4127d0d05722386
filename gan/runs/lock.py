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
- a lock whose pid lives but is not a gan process (the pid was reused), or whose heartbeat
  stopped (a hung run), is not taken over: the refusal names the holder's command line and start
  time and says how to clear the lock;
- a sweep holds `<sweep dir>/.sweep.lock` (SWEEP_LOCK) from its start to its end, before any job
  folder exists: a second sweep, or a single run into one of its job folders, is refused;
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

from gan.io.files import check_output_dir
from gan.io.usage import UsageError, exit_for
from gan.runs.folder import holds_run, move_aside, occupied_message

log = logging.getLogger(__name__)

LOCK = ".lock"
SWEEP_LOCK = ".sweep.lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0
HYDRA_FILES = ("config", "overrides", "hydra")

_held: dict[Path, threading.Event] = {}  # lock file -> stops its heartbeat
_archived: dict[Path, int] = {}  # run dir -> the history number of the config before this run


class RunFolderBusy(UsageError):
    """Another live run owns the folder."""


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.now().isoformat(timespec="seconds")}


def read_lock(run_dir: str | os.PathLike, name: str = LOCK) -> dict | None:
    try:
        return json.loads((Path(run_dir) / name).read_text())
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
        return path.resolve() not in _held
    return not _alive(holder["pid"])


def _create(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(_me(), f)
    return True


def process(pid: int) -> dict:
    """A live local process's command line and start time (Linux /proc; empty elsewhere)."""
    info: dict = {}
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        info["cmdline"] = " ".join(a.decode(errors="replace") for a in raw.split(b"\0") if a)
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
        info["started"] = datetime.fromtimestamp(started).isoformat(timespec="seconds")
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    return info


def is_gan(cmdline: str | None) -> bool:
    """Whether a command line is one of ours (python -m gan.<entry>, a gan-* script, pytest)."""
    return cmdline is None or any(w in cmdline for w in ("gan.", "gan-", "/gan/", "pytest"))


def busy_message(key: str, run_dir: Path, holder: dict, path: Path) -> str:
    """Why `run_dir` cannot be taken: its holder, with what the user can do about it."""
    who = (f"pid {holder['pid']} on {holder.get('host')}, started {holder.get('started')}")
    if holder.get("host") != socket.gethostname():
        return (f"{key}={run_dir} is in use by another run ({who}): wait for it, or choose "
                f"another {key}=")
    proc = process(holder["pid"])
    cmd = proc.get("cmdline")
    seen = f"its process: `{cmd}`, started {proc.get('started')}" if cmd else "its process"
    clear = f"if you are sure no run uses {run_dir}, remove {path} and run again"
    if not is_gan(cmd):
        return (f"{key}={run_dir} is in use by another run? {path} names {who}, but {seen} is "
                f"not a gan run (its pid was reused): {clear}")
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        age = 0.0
    if age > STALE_AFTER_S:
        return (f"{key}={run_dir} is in use by another run that looks hung ({who}; {seen}): "
                f"its lock has had no heartbeat for {age:.0f} s (every {HEARTBEAT_S:.0f} s "
                f"while it lives): stop it (kill {holder['pid']}), or {clear}")
    return (f"{key}={run_dir} is in use by another run ({who}; {seen}): wait for it, or choose "
            f"another {key}=")


def ddp_child() -> bool:
    """True in a process Lightning's DDP launcher started for rank > 0: it re-runs `gan.train`
    with the same run folder, which rank 0 owns (and locked) already."""
    return any(int(os.environ.get(key) or 0) > 0 for key in ("LOCAL_RANK", "NODE_RANK"))


def acquire(run_dir: str | os.PathLike, key: str = "hydra.run.dir", name: str = LOCK) -> None:
    """Own `run_dir` (made if absent) or raise RunFolderBusy naming the live owner."""
    run_dir = Path(run_dir).resolve()
    path = run_dir / name
    if path in _held:
        return
    check_output_dir(run_dir, key)  # a read-only folder: one line, not a logging traceback
    for _ in range(3):
        if _create(path):
            _hold(path)
            return
        holder = read_lock(run_dir, name)
        if not is_stale(holder, path):
            raise RunFolderBusy(busy_message(key, run_dir, holder, path))
        # Move the stale lock aside under a name of our own: of two runs taking over, only one
        # renames it; the other finds the new owner's lock on its next try.
        aside = path.with_name(f"{name}.stale.{os.getpid()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            continue
        aside.unlink(missing_ok=True)
        print(f"gan.train: taking over {path}: its run (pid {(holder or {}).get('pid')} on "
              f"{(holder or {}).get('host')}, started {(holder or {}).get('started')}) is gone",
              file=sys.stderr, flush=True)
    raise RunFolderBusy(f"{key}={run_dir}: could not take its lock {path}")


def held_by_other(run_dir: str | os.PathLike, name: str) -> dict | None:
    """The live holder of `run_dir/name` when it is not this process, else None."""
    path = Path(run_dir).resolve() / name
    if path in _held or not path.exists():
        return None
    holder = read_lock(run_dir, name)
    return None if is_stale(holder, path) else holder


def _hold(path: Path) -> None:
    stop = threading.Event()
    _held[path] = stop

    def beat():  # another host judges the lock by its age
        while not stop.wait(HEARTBEAT_S):
            try:
                os.utime(path)
            except OSError:
                return

    threading.Thread(target=beat, daemon=True, name="run-lock-heartbeat").start()


def release(run_dir: str | os.PathLike, name: str = LOCK) -> None:
    path = Path(run_dir).resolve() / name
    stop = _held.pop(path, None)
    if stop is None:
        return
    stop.set()
    holder = read_lock(path.parent, name)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


@atexit.register
def release_all() -> None:
    for path in list(_held):
        release(path.parent, path.name)


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
    writes its logs and `.hydra/` there; a fresh run into a folder that holds a run is refused
    (or, with overwrite=true, the old run is moved aside). A sweep's jobs are covered by the
    sweep's lock (gan/sweeps/continuation.py) and take their own folder's in gan.train."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        if ddp_child():  # rank 0 holds the folder for the whole DDP run
            return
        run_dir = Path(config.hydra.run.dir).resolve()
        try:
            sweep = held_by_other(run_dir.parent, SWEEP_LOCK)
            if sweep is not None:  # one of a live sweep's job folders
                raise RunFolderBusy(busy_message("hydra.sweep.dir", run_dir.parent, sweep,
                                                 run_dir.parent / SWEEP_LOCK)
                                    + f" (hydra.run.dir={run_dir} is one of its job folders)")
            acquire(run_dir)
            self._keep_the_old_run(config, run_dir)
        except UsageError as err:
            release(run_dir)
            raise exit_for("train", err, debug=False) from None
        archive_configs(run_dir)

    @staticmethod
    def _keep_the_old_run(config: DictConfig, run_dir: Path) -> None:
        held = holds_run(run_dir)
        if held is None or config.get("ckpt_path") is not None or config.get("skip_done"):
            return
        if not config.get("overwrite"):
            raise UsageError(occupied_message(run_dir, held, list(config.hydra.overrides.task)))
        aside = move_aside(run_dir, keep=(LOCK,))
        print(f"gan.train: overwrite=true: the run that was in {run_dir} (status {held}) is now "
              f"in {aside}", file=sys.stderr, flush=True)

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        if not ddp_child():
            release(config.hydra.run.dir)
