"""Queue a trial with known values (e.g. the current default) in a stored Optuna study; the
search's next trial runs it before the sampler's own suggestions:

    python -m gan.search hparams_search=<name> [hydra.sweeper.study_name=...] key=value ...

`hparams_search=<name>` (and any `hydra.*` override) names the search as `gan.train -m` runs it:
its storage (a journal file in its sweep dir by default) and study name. Every other `key=value`
is a knob of the trial and must be in the search space (`hydra.sweeper.params`, or a trick's
own knob such as `tricks.r1.gamma`)."""

from __future__ import annotations

import sys

from gan.sweeps.search import enqueue, queued_trial, search_config


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    usage = __doc__.split("\n\n")[1].strip()
    if not argv or not all("=" in a for a in argv):
        print(f"usage: {usage}", file=sys.stderr)
        sys.exit(2)
    try:
        cfg, knobs = search_config(argv)
        storage, study_name, params = queued_trial(cfg, knobs)
        enqueue(storage, study_name, params)
    except ValueError as err:
        print(f"gan.search: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
    print(f"queued in study {study_name} ({storage}): {params}")


if __name__ == "__main__":
    main()
