"""Trials whose worker died: found by their missing heartbeat, failed, and asked again.

A worker killed mid-trial (SIGKILL, a lost node, a job past its SLURM limit) never tells its
trials: they would stay RUNNING in the shared study for ever, count towards
`hydra.sweeper.max_trials`, and their knobs would never be measured. Optuna's own heartbeat
(`fail_stale_trials`) exists for RDB storages only, not for the journal file this project uses
by default, so the sweeper keeps its own:

- while a round's jobs run, a thread stamps each of its trials' `heartbeat` user attribute
  (Unix seconds) every `interval` seconds: one small journal append per trial;
- a worker starting (or starting its next round) fails every RUNNING trial whose last stamp (or
  start, for a trial from before heartbeats) is older than `stale_after` seconds, and enqueues
  its knobs again, so the next `ask()` of any worker measures them as a new trial.

Another worker's live trial is stamped by that worker, so it is never taken for dead while its
worker lives. Two workers starting within the same second may both retry one dead trial
(Optuna's tell is not a compare-and-swap across processes); the duplicate costs one trial.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

import optuna
from optuna.trial import TrialState

from gan.sweeps.storage import trial_of

log = logging.getLogger(__name__)

HEARTBEAT = "heartbeat"
RETRY_OF = "retry_of"


def last_sign_of_life(trial: optuna.trial.FrozenTrial) -> float:
    """Unix seconds of the trial's last heartbeat, or of its start when it has none."""
    beat = trial.user_attrs.get(HEARTBEAT)
    if beat is not None:
        return float(beat)
    start = trial.datetime_start
    return start.timestamp() if start is not None else time.time()


def retry_stale(study: optuna.Study, stale_after: float | None,
                now: float | None = None) -> list[int]:
    """Fail the RUNNING trials silent for more than `stale_after` seconds and enqueue their
    knobs again (the retry carries `retry_of`). Returns the numbers failed here."""
    if stale_after is None:
        return []
    now = time.time() if now is None else now
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        silent = now - last_sign_of_life(trial)
        if silent <= stale_after:
            continue
        note = f"stale: no heartbeat for {silent:.0f} s (its worker died); knobs queued again"
        try:
            trial_of(study, trial.number).set_user_attr("outcome", note)
            study.tell(trial.number, state=TrialState.FAIL)
        except RuntimeError:  # another worker failed it first: its retry is queued already
            continue
        study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number},
                            skip_if_exists=False)
        log.warning("trial %d: %s", trial.number, note)
        failed.append(trial.number)
    return failed


class Heartbeat:
    """`with Heartbeat(trials, interval):` stamps each trial's `heartbeat` every `interval`
    seconds (and once on entry) until the block ends, from a daemon thread."""

    def __init__(self, trials: Iterable[optuna.Trial], interval: float | None):
        self.trials, self.interval = list(trials), interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        stamp = time.time()
        for trial in self.trials:
            try:
                trial.set_user_attr(HEARTBEAT, stamp)
            except Exception as err:  # noqa: BLE001 (a missed stamp must not end the search)
                log.warning("trial %d: heartbeat not written: %s", trial.number, err)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def __enter__(self) -> Heartbeat:
        if self.interval is not None:
            self.beat()
            self._thread = threading.Thread(target=self._run, name="trial-heartbeat",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
