"""Progress of a long build: scans done of total, skipped so far, time left, every few seconds.

The Beam workers are other processes (the multi-process DirectRunner) or other machines
(Flink, Spark, Dataflow through the portable runner), and a runner's metrics reach the
launching process only when the pipeline ends, on the local runners. So each worker marks
every row it finishes with an empty file in a folder beside the dataset being written
(`mark_done`), on any Beam filesystem the workers already write the dataset to (local, NFS,
gs://), and the launching process counts the files every `interval` seconds (`BuildProgress`).
A file is named by the row's index, so a retried bundle rewrites its files and counts once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from apache_beam.io.filesystems import FileSystems

# Default seconds between two progress lines (the config's `progress_seconds`; 0 turns them off).
DEFAULT_PROGRESS_SECONDS = 30.0
PROGRESS_FOLDER = "ingest_progress"
_WRITTEN = ".written"
_SKIPPED = ".skipped"


def mark_done(folder: str, index: int, skipped: bool) -> None:
    """Marks row `index` as finished, written or skipped, with an empty file in `folder`."""
    with FileSystems.create(FileSystems.join(folder, f"{index}{_SKIPPED if skipped else _WRITTEN}")):
        pass


def count_done(folder: str) -> tuple[int, int]:
    """(rows finished, of which skipped) as the files in `folder` say; (0, 0) before the first."""
    try:
        matched = FileSystems.match([FileSystems.join(folder, "*")])[0].metadata_list
    except OSError:  # Beam's BeamIOError: the folder does not exist yet
        return 0, 0
    names = {metadata.path.rsplit("/", 1)[-1] for metadata in matched}
    rows = {name.split(".", 1)[0] for name in names}
    skipped = {name.split(".", 1)[0] for name in names if name.endswith(_SKIPPED)}
    return len(rows), len(skipped)


class BuildProgress:
    """Logs the count of finished rows every `interval` seconds from a thread, and once at the end."""

    def __init__(self, folder: str, total: int, label: str, interval: float, log: Callable[[str], None]):
        """Creates the reporter; `start` starts it.

        Args:
          folder: The folder the workers mark finished rows in.
          total: Rows handed to the pipeline.
          label: The line's start, e.g. "nihpd".
          interval: Seconds between two lines.
          log: Where a line goes.
        """
        self._folder = folder
        self._total = total
        self._label = label
        self._interval = interval
        self._log = log
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="build-progress", daemon=True)
        self._start = time.monotonic()

    def line(self, final: bool = False) -> str:
        """ "nihpd: 12 of 20 scans done (1 skipped), 31 s elapsed, about 21 s left".

        Once every scan is done, the pipeline still shuffles and writes the dataset: the line
        says so, and the last line (`final`) gives the time in all.
        """
        done, skipped = count_done(self._folder)
        elapsed = time.monotonic() - self._start
        if final:
            state = "finished"
        elif done >= self._total:
            state = "writing the dataset"
        elif done:
            state = f"about {elapsed * (self._total - done) / done:.0f} s left"
        else:
            state = "time left unknown"
        counts = f"{done} of {self._total} scans done ({skipped} skipped)"
        return f"{self._label}: {counts}, {elapsed:.0f} s elapsed, {state}"

    def start(self) -> None:
        """Starts the clock and the thread."""
        self._start = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self._log(self.line())

    def stop(self) -> None:
        """Stops the thread, logs the last line and removes the folder."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()
        self._log(self.line(final=True))
        if FileSystems.exists(self._folder):
            FileSystems.delete([self._folder])
