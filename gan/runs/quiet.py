"""A quiet console: Lightning's advertisements for its cloud products are dropped, and two
warnings about our own deliberate choices.

Lightning 2.6 prints a "💡 Tip" recommending litlogger (when no LitLogger is attached) and one
recommending litmodels, on every Trainer, through its rank-zero info logger. They are not about
the run, and a sweep of 24 jobs prints them 48 times. Lightning's progress bar, its other
warnings and our one-line messages stay; only records that start with the tip's marker go.

The warnings: "Found N module(s) in eval mode at the start of training" names the frozen copies
a trick keeps in eval mode on purpose (the self-conditioned GAN's cluster encoder, EMA's G); and
Lightning 2.6's own call of a torch pytree API that torch 2.14 deprecates (`LeafSpec`), which
no user can act on.
"""

from __future__ import annotations

import logging
import warnings

# Where rank_zero_info logs (lightning.pytorch's and lightning.fabric's rank_zero modules).
LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
MARKER = "💡 Tip:"


class NoAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(MARKER)


def quiet_adverts() -> None:
    """Install the filters once (idempotent: a sweep builds many Trainers in one process)."""
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoAdverts) for f in logger.filters):
            logger.addFilter(NoAdverts())
