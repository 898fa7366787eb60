"""Beam's local runner for the ingest: which one runs when none is named, and the fix that makes it lossless.

**The runner.** The builders run on the runner the Beam options name, given the way
TFDS takes them: `tfds build --beam_pipeline_options="runner=...,..."`, or
`tfds.download.DownloadConfig(beam_runner=..., beam_options=...)`. When they name none,
`with_default_runner` makes it `local_runner(options)`: Beam's FnApiRunner, which is what
Beam's DirectRunner runs a batch pipeline on, without the DirectRunner's first attempt
to download and run Prism from GitHub (Beam's maintainers' advice in apache/beam#34612:
pin the FnApiRunner). `direct_running_mode` and `direct_num_workers` still choose one
process or several.

**Lossless.** Apache Beam 2.77's FnApiRunner, when it talks to its SDK workers over gRPC
(`direct_running_mode=multi_processing` or `multi_threading`, and the PortableRunner's
embedded job server, `job_endpoint=embed`, which runs the same FnApiRunner in the
launching process) can silently drop stage inputs. The runner sends each bundle's input
to a worker over a `TimeBasedBufferingClosableOutputStream`. A background thread flushes
that stream every second, with `flush_callback(self.get())` followed by `self._clear()`
under `_flush_lock`. But `write()` does not take the lock. So a chunk the sending thread
writes between `get()` and `_clear()` is cleared and never sent. Each chunk holds whole
elements, so the stream still decodes and nothing fails. Measured on 971-scan builds of
`synthetic_cohort/experiment` on 2 cores: 19, 58, 45 and 7 examples lost when other jobs
loaded the CPU, and none when the machine was quiet.

`prepare_local_runner(pipeline)`, which every builder calls, makes `write()` take the same
lock, in the launching process (where that runner runs), and only when such a runner is
the pipeline's. It does so once, however often it is called or this module is reloaded,
and only on a Beam whose release and stream code are the ones it was tested on
(`TESTED_BEAM`). On any other Beam it patches nothing and, with one warning line, runs the
multi-process DirectRunner in one process (`direct_running_mode=in_memory`, no gRPC data
stream, so no race); the embedded job server is left as it is, and the builders'
accounting checks stop a build that lost rows. Flink, Spark and Dataflow are left alone.
A separate job server runs its FnApiRunner in its own process: `tfds_builders.job_service`
applies the fix there, with `serialize_buffered_writes`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import logging

import apache_beam as beam
from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    PortableOptions,
    StandardOptions,
)
from apache_beam.runners.worker import data_plane

_LOGGER = logging.getLogger(__name__)

# Beam release -> SHA-256 of the stream code the fix relies on (`beam_internals_fingerprint`).
TESTED_BEAM = {"2.77.0": "7721ad7b8050cc761bd22abe0e6399dc339d3db1e2f3ec763e7dd1dc84ae21dc"}
# The running modes in which the FnApiRunner sends stage inputs to its workers over gRPC.
GRPC_RUNNING_MODES = ("multi_processing", "multi_threading")
# What the multi-process DirectRunner falls back to on a Beam the fix does not know.
SAFE_RUNNING_MODE = "in_memory"

_STREAM = data_plane.TimeBasedBufferingClosableOutputStream
# Set on the locked `write`, so a second call (or a reloaded module) recognises it.
_PATCH_MARK = "_brainage_tf_takes_flush_lock"


def _unlocked_write():
    """Beam's own `write` of the stream: the nearest in its MRO that is not the locked one."""
    for klass in _STREAM.__mro__:
        write = vars(klass).get("write")
        if write is not None and not getattr(write, _PATCH_MARK, False):
            return write
    raise AttributeError(f"{_STREAM.__name__} has no write method")


def beam_internals_fingerprint() -> str | None:
    """SHA-256 of the stream code the race lives in, or None when its source cannot be read.

    It covers the stream's `__init__` (creates `_flush_lock`), `flush` (takes it), `close`,
    the size-based `flush` (`get()` then `_clear()`), and which class defines `write`: a
    Beam whose `write` takes the lock itself would deadlock under a second, non-reentrant take.
    """
    size_based = data_plane.SizeBasedBufferingClosableOutputStream
    try:
        sources = [inspect.getsource(method) for method in (_STREAM.__init__, _STREAM.flush, _STREAM.close)]
        sources.append(inspect.getsource(size_based.flush))
        owner = next(klass for klass in _STREAM.__mro__ if vars(klass).get("write") is _unlocked_write())
    except (OSError, TypeError, AttributeError, StopIteration):
        return None
    sources.append(f"write defined by {owner.__module__}.{owner.__qualname__}")
    return hashlib.sha256("\n".join(sources).encode()).hexdigest()


def beam_is_tested() -> bool:
    """Whether the installed Beam is a release in `TESTED_BEAM` with the stream code it had there."""
    expected = TESTED_BEAM.get(beam.__version__)
    return expected is not None and beam_internals_fingerprint() == expected


def _locked(write):
    def write_under_flush_lock(self, b: bytes, nested: bool = False) -> None:
        with self._flush_lock:
            write(self, b, nested)

    write_under_flush_lock.__wrapped__ = write
    setattr(write_under_flush_lock, _PATCH_MARK, True)
    return write_under_flush_lock


def serialize_buffered_writes() -> bool:
    """Makes Beam's time-flushed data stream take its flush lock on `write`, once.

    The runner writes each stage input with Python-level `write` calls, which this covers.
    Other write methods (`write_byte`, `write_var_int64`) serve coders on workers, whose
    streams flush by size in the writing thread.

    Returns:
        True when the locked `write` is in place (now or already), False when the installed
        Beam is not one it was tested on, in which case nothing is changed.
    """
    if getattr(vars(_STREAM).get("write"), _PATCH_MARK, False):
        return True
    if not beam_is_tested():
        return False
    _STREAM.write = _locked(_unlocked_write())
    return True


def grpc_runner_here(pipeline: beam.Pipeline) -> str | None:
    """How `pipeline`'s runner sends stage inputs over gRPC from this process, or None.

    Returns:
        The DirectOptions running mode (multi_processing, multi_threading) of a local
        FnApiRunner or DirectRunner, "embed" for the PortableRunner's embedded job server,
        None for every other runner (in_memory, Flink, Spark, Dataflow, an external job server).
    """
    from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.runners.portability.portable_runner import PortableRunner

    options = pipeline.options
    if isinstance(pipeline.runner, (FnApiRunner, SwitchingDirectRunner)):
        mode = options.view_as(DirectOptions).direct_running_mode
        return mode if mode in GRPC_RUNNING_MODES else None
    embedded_job_server = options.view_as(PortableOptions).job_endpoint == "embed"
    if isinstance(pipeline.runner, PortableRunner) and embedded_job_server:
        return "embed"
    return None


def prepare_local_runner(pipeline: beam.Pipeline) -> str:
    """Makes `pipeline`'s runner lossless before it runs: the fix, or the safe mode, or nothing.

    Args:
        pipeline: A pipeline not yet run, on any runner.

    Returns:
        "not needed" (the runner sends no input over a time-flushed gRPC stream here),
        "fixed" (the locked `write` is in place), or "safe mode" (an untested Beam).
    """
    mode = grpc_runner_here(pipeline)
    if mode is None:
        return "not needed"
    if serialize_buffered_writes():
        return "fixed"
    tested = ", ".join(TESTED_BEAM)
    if mode == "embed":
        _LOGGER.warning(
            "Beam %s is not a release the DirectRunner fix was tested on (%s): the embedded job server "
            "runs unfixed, and the accounting checks stop the build if it loses rows (docs/ingest.md)",
            beam.__version__,
            tested,
        )
    else:
        pipeline.options.view_as(DirectOptions).direct_running_mode = SAFE_RUNNING_MODE
        _LOGGER.warning(
            "Beam %s is not a release the DirectRunner fix was tested on (%s): the ingest runs in one "
            "process (direct_running_mode=%s instead of %s; docs/ingest.md)",
            beam.__version__,
            tested,
            SAFE_RUNNING_MODE,
            mode,
        )
    return "safe mode"


def local_runner(options: PipelineOptions | None = None):
    """Beam's FnApiRunner as Beam's DirectRunner builds it for a batch pipeline, minus the Prism attempt.

    The options go into its provision info, as the DirectRunner puts them, so worker
    processes (multi_processing) get them too (log level, pickler).

    Args:
        options: The pipeline's options.

    Returns:
        A `FnApiRunner`.
    """
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options((options or PipelineOptions([])).get_all_options())
    return fn_runner.FnApiRunner(
        provision_info=fn_runner.ExtendedProvisionInfo(
            beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
        )
    )


def with_default_runner(download_config):
    """`download_config` with `local_runner` as its runner when neither its runner nor its options name one.

    Args:
        download_config: A `tfds.download.DownloadConfig` (not changed).

    Returns:
        The same config when it names a runner, else a copy that names the local one.
    """
    options = download_config.beam_options
    if download_config.beam_runner is not None or (
        options is not None and options.view_as(StandardOptions).runner
    ):
        return download_config
    options = copy.deepcopy(options) if options is not None else PipelineOptions([])
    return dataclasses.replace(download_config, beam_runner=local_runner(options), beam_options=options)
