"""Writes that a killed process cannot leave half-done."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from gan.io.usage import UsageError


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """`write(tmp)` then rename `tmp` over `path`: readers see the old file or the new, whole.

    The temporary file sits next to the target (same file system, so the rename is atomic, and
    a kill leaves it beside the run's files rather than in the system temp dir); it is removed
    if `write` fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it owner-only; give a plain file's mode
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


# What a file holds, by its first bytes, and what its name promises, by its suffix: an output is
# replaced only by a file of the same kind (a .onnx name never receives TorchScript).
KIND_OF_SUFFIX = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".pt": "torch",
                  ".ckpt": "torch", ".onnx": "ONNX", ".json": "JSON"}


def sniff(path: str | os.PathLike) -> str:
    """The kind of file at `path` from its first bytes: PNG, JPEG, torch (zip or pickle), ONNX
    (a protobuf starting with ir_version), JSON, empty, or unknown."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        return "empty"
    if head.startswith(b"\x89PNG"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return "torch"
    if head[:1] == b"\x08":  # field 1 (ir_version), varint: how every ONNX ModelProto starts
        return "ONNX"
    if head.lstrip()[:1] in (b"{", b"["):
        return "JSON"
    return "unknown"


def check_output(path: str | os.PathLike, key: str, suffixes: tuple[str, ...] | None = None,
                 kind: str | None = None) -> Path:
    """Refuse, before any work, an output that cannot be written: a directory, a suffix not in
    `suffixes`, a folder that cannot be made or written, an existing file of another kind than
    the one about to replace it (`kind`, else the suffix's). Makes the parent folder."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{key}={path} is a directory: give a file name")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise UsageError(f"{key}={path}: the file name must end in {' or '.join(suffixes)}")
    check_output_dir(path.parent, key, shown=path)
    kind = kind or KIND_OF_SUFFIX.get(path.suffix.lower())
    if path.is_file() and kind is not None:
        found = sniff(path)
        if found not in ("empty", kind):
            raise UsageError(f"{key}={path} exists and holds a {found} file, not {kind}: "
                             f"choose another {key}= or move the file away")
    return path


def check_output_dir(folder: str | os.PathLike, key: str, shown=None) -> Path:
    """Make `folder` (and its parents) and prove it writable by writing a file into it."""
    folder, shown = Path(folder), shown or folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise UsageError(f"{key}={shown}: cannot write in {folder} "
                         f"({err.strerror or type(err).__name__})") from None
    return folder
