"""Two fixes that make Beam's local DirectRunner safe for ingest: offline, and lossless.

Every builder calls `prepare_direct_runner(pipeline)` before it applies
`IngestScans`. Both fixes touch only the runner in this process; Flink, Spark
and Dataflow runs are left alone.

**Lossless.** Apache Beam 2.77's multi-process DirectRunner (FnApiRunner with
`--direct_running_mode=multi_processing`) can silently drop stage inputs.
The runner sends each bundle's input to a worker over a
`TimeBasedBufferingClosableOutputStream`. A background thread flushes that
stream every second, with `flush_callback(self.get())` followed by
`self._clear()` under `_flush_lock`. But `write()` does not take the lock. So
a chunk the sending thread writes between `get()` and `_clear()` is cleared
and never sent. Each chunk holds whole elements, so the stream still decodes
and nothing fails. Measured on 971-scan builds of `synthetic_cohort/experiment`
on 2 cores: 19, 58, 45 and 7 examples lost when other jobs loaded the CPU,
and none when the machine was quiet. `serialize_buffered_writes` makes
`write()` take the same lock. `direct_runner_test.py` reproduces the
loss, and it fails without the fix.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.runners.worker import data_plane

_STREAM = data_plane.TimeBasedBufferingClosableOutputStream
_UNLOCKED_WRITE = _STREAM.write


def _write_under_flush_lock(self, b: bytes, nested: bool = False) -> None:
    with self._flush_lock:
        _UNLOCKED_WRITE(self, b, nested)


def serialize_buffered_writes() -> None:
    """Makes Beam's time-flushed data stream take its flush lock on `write` (idempotent).

    The runner writes each stage input with Python-level `write` calls, which
    this covers. Other write methods (`write_byte`, `write_var_int64`) serve
    coders on workers, whose streams flush by size in the writing thread.
    """
    _STREAM.write = _write_under_flush_lock


def keep_direct_runner_offline(pipeline: beam.Pipeline) -> None:
    """Stops Beam's default DirectRunner from trying the Prism runner first.

    Since Beam 2.6x the DirectRunner first runs a pipeline on Prism, which it
    downloads from GitHub at run time (a network access, and it ignores
    `direct_running_mode`). Its interactive flag is the runner's only switch
    that skips Prism; it then runs on the local FnApiRunner as before. Other
    runners are left alone.

    Args:
      pipeline: A pipeline not yet run.
    """
    from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner

    if type(pipeline.runner) is SwitchingDirectRunner:
        pipeline.runner.is_interactive()


def prepare_direct_runner(pipeline: beam.Pipeline) -> None:
    """Applies both fixes before `pipeline` runs: no Prism download, no lost inputs.

    Args:
      pipeline: A pipeline not yet run, on any runner.
    """
    keep_direct_runner_offline(pipeline)
    serialize_buffered_writes()
