"""Compare the runs of sweeps: `python -m gan.report DIR [DIR ...] [report.ignore=[k,...]]
[report.baseline=key=value[,key=value]]`.

DIR is a sweep folder (basic, joblib, submitit or Optuna), or run dirs. Writes `report/` (report.md,
report.csv, curves.png, mosaic.png) in the first DIR: per group, against the baseline or the
top-ranked group, Δ FID with its Welch (or paired) 95 % interval, the Holm-adjusted p and the
verdict, the success rate, every seed's value and the power of the design. Failed and diverged
runs count as the worst outcome. How it decides: gan/sweeps/report.py.
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
