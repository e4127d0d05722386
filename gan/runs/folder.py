"""A run folder that holds a run is never written by another: a fresh run into it is refused in
one line that says how to resume it or where else to start; `overwrite=true` moves the old run
aside (never deletes it). And the commands a run prints, quoted so they run as printed.

A folder "holds a run" when something of value is there: a checkpoint, final metrics, an
evaluation curve, or a status.json saying a run ended (done, diverged). A run refused or stopped
before its first checkpoint (bad input, a signal in setup) leaves none of these, so the
corrected command may use the folder again.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from gan.io.artefacts import read_status

HELD_STATUSES = ("done", "diverged")
VALUABLE = ("metrics.json", "curve.csv")
# Overrides that say how to run, not what: left out of a printed command that adds its own.
BOOKKEEPING = ("ckpt_path", "skip_done", "overwrite")


def holds_run(run_dir: str | os.PathLike) -> str | None:
    """What `run_dir` holds ("done", "interrupted", "started", ...), or None for nothing of
    value."""
    run_dir = Path(run_dir)
    status = read_status(run_dir).get("status")
    if status in HELD_STATUSES:
        return status
    if any((run_dir / "checkpoints").glob("*.ckpt")) or any(
            (run_dir / name).is_file() for name in VALUABLE):
        return status or "started"
    return None


def last_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    return last if last.is_file() else None


def move_aside(run_dir: str | os.PathLike, keep: tuple[str, ...] = ()) -> Path:
    """`overwrite=true`: the folder's contents (but `keep`, e.g. the lock this run holds) move
    to a sibling `<name>.old-<n>`: nothing is deleted."""
    run_dir = Path(run_dir)
    n = 1
    while (aside := run_dir.with_name(f"{run_dir.name}.old-{n}")).exists():
        n += 1
    aside.mkdir()
    for entry in run_dir.iterdir():
        if entry.name not in keep:
            os.rename(entry, aside / entry.name)
    return aside


# Hydra's override grammar gives these a meaning in an unquoted value (`=` in a folder name
# such as `0_loss=bce` fails with "mismatched input '='").
_HYDRA_SPECIAL = re.compile(r"[\s=,:\[\]{}()'\"\\$*?@%]")


def hydra_value(value: str) -> str:
    """`value` as a Hydra override value: quoted when the grammar would read it otherwise."""
    if not _HYDRA_SPECIAL.search(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command(entry: str, overrides: list[str], **settings: str | os.PathLike) -> str:
    """`python -m gan.<entry> ...` as a shell line: the typed `overrides` (already valid Hydra,
    minus BOOKKEEPING and the keys of `settings`), then each `key=value` of `settings` quoted for
    Hydra; every argument quoted for the shell."""
    keys = {k.replace("__", ".") for k in settings} | set(BOOKKEEPING)
    kept = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] not in keys]
    added = [f"{k.replace('__', '.')}={hydra_value(str(v))}" for k, v in settings.items()]
    return " ".join(["python", "-m", f"gan.{entry}", *(shlex.quote(a) for a in kept + added)])


def resume_line(overrides: list[str], run_dir: str | os.PathLike, ckpt: str | os.PathLike) -> str:
    """The command that resumes the run in `run_dir` from `ckpt`: same overrides, same folder."""
    return command("train", overrides, ckpt_path=ckpt, hydra__run__dir=run_dir)


def occupied_message(run_dir: Path, held: str, overrides: list[str]) -> str:
    """One line: `run_dir` holds a run; where else to start, how to move it aside, and (last,
    so it can be copied to the end of the line) the command that resumes it."""
    last = last_checkpoint(run_dir)
    resume = f", or resume it with: {resume_line(overrides, run_dir, last)}" if last else ""
    return (f"hydra.run.dir={run_dir} already holds a run (status {held}) and this is a fresh "
            f"run (no ckpt_path=): start elsewhere (leave out hydra.run.dir= or name another), "
            f"add overwrite=true to move the old run aside to {run_dir.name}.old-<n>{resume}")
