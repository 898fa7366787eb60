"""The DirectRunner fix: lossless with it, lossy without; applied once, where needed, on a known Beam."""

import importlib
import logging
import threading

import apache_beam as beam
import pytest
import tensorflow_datasets as tfds
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions
from apache_beam.runners.worker import data_plane

from brainage_tf.ingest import direct_runner

STREAM = data_plane.TimeBasedBufferingClosableOutputStream
BEAM_WRITE = vars(data_plane.OutputStream)["write"]  # Beam's own write, which takes no lock


class UnfixedStream(STREAM):
    """The control: Beam's stream with Beam's own write, whatever this process patched."""

    write = BEAM_WRITE


def _write_during_a_periodic_flush(stream_class) -> bytes:
    """Writes one chunk, then a second one while the periodic flusher sits between get() and _clear().

    Returns every byte the stream sent.
    """
    received = []
    flushing, written = threading.Event(), threading.Event()

    def send(data: bytes) -> None:
        received.append(data)
        if data and not flushing.is_set():  # the first flush of data: hold it until the writer has written
            flushing.set()
            written.wait(timeout=0.5)  # with the fix the writer waits for the lock instead: time out

    stream = stream_class(close_callback=send, flush_callback=send, time_flush_threshold_ms=10)
    stream.write(b"first ")
    assert flushing.wait(timeout=10)
    stream.write(b"second")
    written.set()
    stream.close()
    return b"".join(received)


def test_without_the_fix_a_chunk_written_during_a_flush_is_lost():
    assert _write_during_a_periodic_flush(UnfixedStream) == b"first "


def test_with_the_fix_a_chunk_written_during_a_flush_is_sent():
    assert direct_runner.serialize_buffered_writes()
    assert _write_during_a_periodic_flush(STREAM) == b"first second"


def test_the_fix_wraps_beams_write_once_however_often_applied_or_reloaded():
    assert direct_runner.serialize_buffered_writes() and direct_runner.serialize_buffered_writes()
    reloaded = importlib.reload(direct_runner)
    assert reloaded.serialize_buffered_writes()
    assert vars(STREAM)["write"].__wrapped__ is BEAM_WRITE  # no wrapper of a wrapper


def _pipeline(*flags: str) -> beam.Pipeline:
    options = PipelineOptions(list(flags))
    named = any(flag.startswith("--runner") for flag in flags)
    runner = None if named else direct_runner.local_runner(options)
    return beam.Pipeline(runner=runner, options=options)


@pytest.mark.parametrize(
    "flags, outcome",
    [
        (["--direct_running_mode=in_memory"], "not needed"),
        # A job server of its own, e.g. Flink's: the runner is not in this process.
        (["--runner=PortableRunner", "--job_endpoint=localhost:8099"], "not needed"),
        (["--direct_running_mode=multi_processing", "--direct_num_workers=2"], "fixed"),
        (["--runner=DirectRunner", "--direct_running_mode=multi_threading"], "fixed"),
        (["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"], "fixed"),
    ],
)
def test_the_fix_applies_only_where_a_runner_streams_inputs_over_grpc_from_this_process(
    monkeypatch, flags, outcome
):
    monkeypatch.delattr(STREAM, "write", raising=False)  # this process as before any fix
    assert direct_runner.prepare_local_runner(_pipeline(*flags)) == outcome
    assert ("write" in vars(STREAM)) == (outcome == "fixed")


@pytest.mark.parametrize("change", ["another release", "a write of its own"])
def test_an_untested_beam_runs_in_one_process_with_one_warning_line(monkeypatch, caplog, change):
    monkeypatch.delattr(STREAM, "write", raising=False)
    if change == "another release":
        monkeypatch.setattr(beam, "__version__", "2.99.0")
    else:  # e.g. a Beam whose write takes the (non-reentrant) flush lock itself: wrapping it would deadlock

        def write_under_lock(self, b, nested=False):
            with self._flush_lock:
                BEAM_WRITE(self, b, nested)

        monkeypatch.setattr(STREAM, "write", write_under_lock)
    pipeline = _pipeline("--direct_running_mode=multi_processing", "--direct_num_workers=2")
    with caplog.at_level(logging.WARNING, logger=direct_runner.__name__):
        assert direct_runner.prepare_local_runner(pipeline) == "safe mode"
    assert pipeline.options.view_as(DirectOptions).direct_running_mode == "in_memory"
    assert vars(STREAM).get("write") is (None if change == "another release" else write_under_lock)
    (record,) = caplog.records
    assert "not a release the DirectRunner fix was tested on (2.77.0)" in record.getMessage()
    assert "direct_running_mode=in_memory instead of multi_processing" in record.getMessage()
    assert "\n" not in record.getMessage()


def test_a_runner_the_options_name_is_kept_and_none_named_means_the_local_fn_api_runner():
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    portable = PipelineOptions(["--runner=PortableRunner", "--job_endpoint=embed"])
    for named in (
        tfds.download.DownloadConfig(beam_options=portable),
        tfds.download.DownloadConfig(beam_runner=FnApiRunner()),
    ):
        assert direct_runner.with_default_runner(named) is named
    unnamed = tfds.download.DownloadConfig(
        manual_dir="cohort", beam_options=PipelineOptions(["--direct_num_workers=2"])
    )
    local = direct_runner.with_default_runner(unnamed)
    assert isinstance(local.beam_runner, FnApiRunner) and unnamed.beam_runner is None
    assert local.manual_dir == "cohort" and local.beam_options.view_as(DirectOptions).direct_num_workers == 2
    # Its workers get the options, as the DirectRunner gives them (log level, pickler).
    provided = local.beam_runner._provision_info.provision_info.pipeline_options
    assert provided["beam:option:direct_num_workers:v1"] == "2"
