"""Compare the runs of sweeps: `python -m gan.report DIR [DIR ...] [report.ignore=[k,...]]
[report.baseline=key=value[,key=value]]`.

DIR is a sweep folder (basic, joblib, submitit or Optuna), or run dirs; every run dir below it
(a folder with `.hydra/config.yaml`) is read. Runs are grouped by their config minus `seed`
(and the `report.ignore` keys): the seeds of one variant. `report/` inside the first DIR gets

- `report.md`, `report.csv`: one row per group, ranked by mean final FID, with the mean and the
  95 % Student-t interval over seeds of every final metric, and the config keys whose values
  differ between groups (a loss file that brings its own optimizer shows up there);
- `curves.png`: FID against wall time and against images seen, mean per group with its band;
- `mosaic.png`: the final grid of each group, labelled with its differing keys.

Statistics use every run that wrote final metrics (ok or diverged: a variant that diverges is
worse, not absent); failed runs are counted, not averaged.
"""

from __future__ import annotations

import sys

from gan.sweeps.report import Report, make_report


def parse_args(argv: list[str]) -> dict:
    """Folders, and `report.ignore=[a,b]` / `report.baseline=...` (folder names may hold `=`,
    so only `report.` arguments are options)."""
    dirs, ignore, baseline = [], (), None
    for arg in argv:
        if arg.startswith("report.ignore="):
            ignore = tuple(k.strip() for k in arg.split("=", 1)[1].strip("[]").split(",")
                           if k.strip())
        elif arg.startswith("report.baseline="):
            baseline = arg.split("=", 1)[1]
        elif arg.startswith("report."):
            raise SystemExit(f"unknown option {arg}: use report.ignore=[k,...] or "
                             "report.baseline=<group id or key=value>")
        else:
            dirs.append(arg)
    if not dirs:
        raise SystemExit(__doc__.split("\n\n")[0])
    return {"dirs": dirs, "ignore": ignore, "baseline": baseline}


def main(argv: list[str] | None = None) -> Report:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        report = make_report(**args)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"gan.report: {err}") from None
    print((report.out / "report.md").read_text())
    print(f"wrote {report.out}/report.md, report.csv, curves.png, mosaic.png")
    return report


if __name__ == "__main__":
    main()
