"""The one progress bar of the package: the steps of a training epoch, the subjects of a synthetic cohort.

The commands draw it on stderr when stderr is a terminal (`on_terminal`): a log file or a
CI job gets their one-line messages only, not a bar's redraws. The library functions draw
it only when asked.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm.auto import tqdm


def on_terminal() -> bool:
    """Whether stderr is a terminal, the one place a progress bar is drawn by default."""
    return sys.stderr.isatty()


def progress_bar(
    iterable: Iterable | None = None, *, total: int | None = None, description: str, unit: str, enabled: bool
) -> tqdm:
    """A bar on stderr that is cleared when done, so the line a command prints next takes its place.

    Args:
        iterable: What the bar counts as it is iterated (or None, and `update()` counts).
        total: Number of units (None: the iterable's length).
        description: Its label, e.g. "epoch 3/30" or "synthetic discovery".
        unit: What one update is, e.g. "step" or "subject".
        enabled: False gives a bar that draws nothing (for a log file, a worker, a test).

    Returns:
        A tqdm bar; close it, or iterate it to the end.
    """
    # Every update is drawn: a step or a subject takes long enough, and each one shows.
    return tqdm(
        iterable,
        total=total,
        desc=description,
        unit=unit,
        leave=False,
        file=sys.stderr,
        disable=not enabled,
        miniters=1,
        mininterval=0,
    )
