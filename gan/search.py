"""Queue a trial with known values in a stored Optuna study:
`python -m gan.search <sweep dir> <study name> key=value [key=value ...]`."""

from __future__ import annotations

import sys
from pathlib import Path

from gan.sweeps.search import enqueue, parse_value


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or not all("=" in a for a in argv[2:]):
        sys.exit("usage: python -m gan.search <sweep dir> <study name> key=value [key=value ...]")
    db = Path(argv[0]) / "optuna.db"
    if not db.is_file():
        sys.exit(f"gan.search: no Optuna study at {db}; start the search first")
    trial = dict(a.split("=", 1) for a in argv[2:])
    enqueue(f"sqlite:///{db}", argv[1], {k: parse_value(v) for k, v in trial.items()})
    print(f"queued in {db}: {trial}")


if __name__ == "__main__":
    main()
