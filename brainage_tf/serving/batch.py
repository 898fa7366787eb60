"""The batch runner `predict` and `explain` share: scans -> preprocessing workers -> a handler -> rows.

Each scan is preprocessed by `brainage_tf.serving.workers.PreprocessingPool` (the
same `preprocess_scan` as ingest), handed to a handler in this process (the model
lives here), and its row goes to a sink as soon as it is finished: a
`ResultJournal` on disk, or a list in memory. Scans the sink already holds are not
worked on again, which is how a resume skips them. A scan that cannot be
preprocessed, whose worker died, or whose handler fails gets a "failed" row with
its reason; the others go on.

SIGINT and SIGTERM inside `signals_interrupt()` raise `Interrupted`, which leaves
the pool's block (stopping every worker) and reaches the command, which keeps the
finished rows and says how to resume.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from brainage_tf.preprocessing import PreprocessConfig, PreprocessedScan
from brainage_tf.serving.journal import FAILED, OK, ResultJournal
from brainage_tf.serving.scans import ScanItem, item_keys
from brainage_tf.serving.workers import PreprocessingPool, guarded

BASE_COLUMNS = ("path", "subject_id", "session", "age", "predicted_age", "brain_age_gap")
SCAN_COLUMNS = (
    "non_finite_voxels",
    "registration_ncc",
    "brain_volume_ml",
    "brain_fov_share",
    "ood",
    "ood_reason",
    "status",
    "reason",
)

# Handler: (index, item, preprocessed scan) -> the row's fields; it raises for a failure of this scan.
Handler = Callable[[int, ScanItem, PreprocessedScan], dict]


class Sink(Protocol):
    """Where finished rows go: keys already finished, and `append` for a new one."""

    finished: Mapping[str, object]

    def append(self, key: str, row: Mapping) -> None: ...


class RowList:
    """A sink in memory: the rows as dicts of Python values."""

    def __init__(self):
        self.finished: dict[str, dict] = {}

    def append(self, key: str, row: Mapping) -> None:
        self.finished[key] = dict(row)


class Interrupted(BaseException):
    """SIGINT or SIGTERM: stop now, keep what is finished (a BaseException, so no handler swallows it).

    Attributes:
        signum: The signal.
        finished: Rows on disk when it stopped (set by `run_resumable`).
        total: Scans of the run (set by `run_resumable`).
        kept_in: The file that keeps them (set by `run_resumable`).
    """

    def __init__(self, signum: int):
        self.signum = signum
        self.finished: int | None = None
        self.total: int | None = None
        self.kept_in: Path | None = None
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by this signal: 128 + its number."""
        return 128 + self.signum


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Interrupted` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise Interrupted(signum)

    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def scan_facts(scan: PreprocessedScan) -> dict:
    """The preprocessing facts a row reports beside the age."""
    metadata = scan.metadata
    return {
        "non_finite_voxels": metadata.non_finite_voxels,
        "registration_ncc": metadata.registration_ncc,
        # The skull-stripping mask's volume (ml, in the scan's space) and share of its field of view;
        # empty cells without a mask (NaN in the metadata).
        **{
            name: None if math.isnan(value) else value
            for name, value in (
                ("brain_volume_ml", metadata.brain_volume_ml),
                ("brain_fov_share", metadata.brain_fov_share),
            )
        },
    }


def finished_row(
    index: int, item: ScanItem, scan: PreprocessedScan | None, reason: str, handler: Handler
) -> dict:
    """A scan's row: its handler's fields, or status "failed" with the reason of whichever step failed.

    The one place a row is made, so the local pool and the Beam path (`brainage_tf.serving.beam_predict`)
    write the same row for the same scan.

    Args:
        index: The item's position in the run, passed to the handler.
        item: The scan.
        scan: Its preprocessed volume, or None when preprocessing failed.
        reason: Why preprocessing failed ("" when `scan` is not None).
        handler: Turns the preprocessed scan into the row's fields; not called without a scan.
    """
    row = {"path": item.path, "subject_id": item.subject_id, "session": item.session, "age": item.age}
    fields = {}
    if scan is not None:
        row.update(scan_facts(scan))
        fields, reason = guarded(lambda: handler(index, item, scan), item.path)
    if reason:
        row.update(status=FAILED, reason=reason)
    else:
        row.update(fields, status=OK, reason="")
        if item.age is not None and "predicted_age" in fields:
            row["brain_age_gap"] = fields["predicted_age"] - item.age
    return row


def run_batch(
    items: Sequence[ScanItem],
    config: PreprocessConfig,
    handler: Handler,
    sink: Sink,
    workers: int = 0,
    *,
    is_complete: Callable[[int], bool] | None = None,
    report: Callable[[int, dict], None] | None = None,
    progress: bool = False,
    description: str = "scans",
) -> list[str]:
    """Works on every item the sink does not hold yet; returns every item's key, in order.

    Args:
        items: The scans.
        config: Their preprocessing.
        handler: Turns a preprocessed scan into its row's fields (e.g. the predicted age).
        sink: Receives each finished row with its key.
        workers: Preprocessing processes (0: in this process, without crash isolation).
        is_complete: For items the sink holds: False when their work is unfinished after all
            (explain: the scan's folder has no completion marker).
        report: Called with (index, row) as each row finishes.
        progress: Show a progress bar.
        description: The progress bar's label.
    """
    from tqdm import tqdm

    keys = item_keys(items)
    todo = [
        index
        for index, key in enumerate(keys)
        if key not in sink.finished or (is_complete is not None and not is_complete(index))
    ]
    with (
        tqdm(total=len(items), initial=len(items) - len(todo), desc=description, disable=not progress) as bar,
        PreprocessingPool(config, workers) as pool,
    ):
        for position, scan, reason in pool.results([items[index].path for index in todo]):
            index = todo[position]
            row = finished_row(index, items[index], scan, reason, handler)
            sink.append(keys[index], row)
            if report is not None:
                report(index, row)
            bar.update()
    return keys


def run_resumable(
    journal: ResultJournal,
    items: Sequence[ScanItem],
    config: PreprocessConfig,
    handler: Handler,
    workers: int,
    **options,
) -> dict[str, int]:
    """`run_batch` into a journal, then the output CSV in input order; see `run_batch` for the options.

    Returns:
        {"rows", "ok", "failed"} of the written CSV.

    Raises:
        Interrupted: With `finished` and `kept_in` set; the journal keeps every finished row.
    """
    try:
        keys = run_batch(items, config, handler, journal, workers, **options)
    except Interrupted as interrupt:
        journal.close()  # flushes a row the signal caught between its write and its flush
        interrupt.finished, interrupt.total, interrupt.kept_in = (
            journal.rows_on_disk(),
            len(items),
            journal.partial,
        )
        raise
    finally:
        journal.close()
    return journal.finish(keys)
