"""Compare the runs of sweeps: `python -m gan.report DIR [DIR ...] [report.ignore=[k,...]]
[report.baseline=key=value[,key=value]] [report.out=<folder>]` (keys: conf/report.yaml).

DIR is a sweep folder (basic, joblib, submitit or Optuna), or run dirs; every run dir below it
(a folder with `.hydra/config.yaml`) is read. Runs are grouped by their config minus `seed`
(and the `report.ignore` keys): the seeds of one variant. `report/` inside the first DIR gets

- `report.md`, `report.csv`: one row per group, ranked by mean final FID, with the mean and the
  95 % Student-t interval over seeds of every final metric, and the config keys whose values
  differ between groups (a loss file that brings its own optimizer shows up there);
- `curves.png`: FID against wall time and against images seen, mean per group with its band;
- `mosaic.png`: the final grid of each group, labelled with its differing keys.

Statistics use every run that wrote final metrics (ok or diverged: a variant that diverges is
worse, not absent); failed runs are counted, not averaged. A run whose status.json or metrics.json
cannot be read is "unreadable": named in the report and counted as failed.
"""

from __future__ import annotations

import re

from omegaconf import DictConfig

from gan.io.errors import UsageError, entry_point
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
                         out=cfg.report.out)
    print((result.out / "report.md").read_text())
    print(f"wrote {result.out}/report.md, report.csv, curves.png, mosaic.png")
    return result


main = entry_point("report", report, "report", hydra_app=False, positional=positional)


if __name__ == "__main__":
    main()
