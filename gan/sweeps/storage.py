"""Where a study lives, so that many workers can share it.

`hydra.sweeper.storage` is a journal file by default (`<sweep dir>/optuna.journal`): Optuna's
JournalFileBackend appends each operation under a file lock, so N processes on one box, or N
nodes on a shared disk, ask and tell the same study without a database server, and never get
the same trial. Any Optuna storage URL (`sqlite:///...`, `postgresql://...`) works as well.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna

from gan.io.usage import UsageError

JOURNAL = "optuna.journal"


def storage_url(storage: str | None, sweep_dir: str | os.PathLike) -> str:
    """The storage as every process of the search names it: a URL as given, a journal file as
    an absolute path (jobs and workers may start elsewhere)."""
    if storage and "://" in str(storage):
        return str(storage)
    path = Path(storage) if storage else Path(sweep_dir) / JOURNAL
    return str(path.resolve())


def open_storage(url: str) -> optuna.storages.BaseStorage | str:
    """An Optuna storage for `storage_url`'s result: a journal file, or the URL itself."""
    if "://" in url:
        return url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    Path(url).parent.mkdir(parents=True, exist_ok=True)
    try:
        return JournalStorage(JournalFileBackend(url))
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as err:  # JSONDecodeError too
        raise UsageError(f"{url} is not a readable Optuna journal ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:120]}): restore it, or move it aside to "
                         f"start the study afresh") from None
    except OSError as err:  # a read-only sweep dir: the journal's lock file cannot be made
        raise UsageError(f"{url}: cannot open the Optuna journal ({err.strerror or err}); "
                         f"hydra.sweep.dir must be writable") from None


def load_study(url: str, study_name: str, **kwargs) -> optuna.Study:
    """The stored study; one line naming the study and storage when there is none."""
    try:
        return optuna.load_study(study_name=study_name, storage=open_storage(url), **kwargs)
    except KeyError:
        names = optuna.get_all_study_names(open_storage(url))
        raise ValueError(f"no study {study_name!r} in {url} (it holds: "
                         f"{', '.join(names) or 'none'}); start the search first") from None


def trial_of(study: optuna.Study, number: int) -> optuna.Trial:
    """The running trial `number` of `study`, as a Trial object this process can report to
    (the sweeper asked it in another process)."""
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.Trial(study, trial_id)
