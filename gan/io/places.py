"""Where the project's own files live, independent of the working directory."""

from __future__ import annotations

from pathlib import Path

# Absolute, so configs resolve the same under `python -m`, console scripts and tests.
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
