"""Compare the runs of sweeps: `python -m gan.report DIR [DIR ...] [report.ignore=[k,...]]
[report.baseline=key=value[,key=value]] [report.out=<folder>] [report.nearest=false]` (keys:
conf/report.yaml).

DIR is a sweep folder (basic, joblib, submitit or Optuna), or run dirs. Writes `report/` (report.md,
report.csv, curves.png, mosaic.png, nearest.png) in the first DIR: ranked by the primary metric
the runs' data declares (FID; mode KL for Stacked MNIST); per group, against the baseline or the
top-ranked group with 2 runs or more, failures by Fisher's exact test and quality by an exact
rank test (failures tied at the worst rank), each family under Holm, the shift with its
simultaneous interval, the verdict, the success rate, every run's value and the power of the
design. How it decides: gan/sweeps/verdicts.py.
A run whose status.json or metrics.json cannot be read is "unreadable": named in the report
and counted as failed.
"""

from __future__ import annotations

import re

from omegaconf import DictConfig

from gan.cli.runner import entry_point
from gan.io.usage import UsageError
from gan.sweeps.report import Report, make_report

# An override of conf/report.yaml (or Hydra's); anything else is a folder (folder names may
# hold `=`). `report.baseline=` is read raw: its `key=value,key=value` is no Hydra value.
OVERRIDE = re.compile(r"^[~+]*(dirs|report\.[\w.]+|hydra\.[\w.]+)=")
RAW = "report.baseline="


def positional(arg: str) -> bool:
    return arg.startswith(RAW) or not OVERRIDE.match(arg)


def report(cfg: DictConfig, args: list[str]) -> Report:
    dirs = [*cfg.dirs, *(a for a in args if not a.startswith(RAW))]
    baseline = next((a[len(RAW):] for a in reversed(args) if a.startswith(RAW)),
                    cfg.report.baseline)
    if not dirs:
        raise UsageError("give the sweep folders or run dirs to compare: "
                         "python -m gan.report DIR [DIR ...] (--help for the keys)")
    result = make_report(dirs=dirs, ignore=tuple(cfg.report.ignore), baseline=baseline or None,
                         out=cfg.report.out, nearest=bool(cfg.report.get("nearest", True)))
    print((result.out / "report.md").read_text())
    print(f"wrote {result.out}/report.md, report.csv, curves.png, mosaic.png"
          + (", nearest.png" if (result.out / "nearest.png").is_file() else ""))
    return result


main = entry_point("report", report, "report", hydra_app=False, positional=positional)


if __name__ == "__main__":
    main()
