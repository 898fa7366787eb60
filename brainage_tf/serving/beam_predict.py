"""`predict` on a Beam runner: the same preprocessing, model and rows as the local pool, through RunInference.

The pipeline is Create(scans) -> Reshuffle -> `PreprocessScans` (the one `preprocess_path`,
with the export's `PreprocessConfig` and its `max_voxels` memory guard) -> RunInference with
`ExportModelHandler` (the export loaded once per worker process through Beam's shared
handle; each scan's fields from `Predictor`) -> `WriteRows`. A scan that fails preprocessing
skips the model; every row is made by `batch.finished_row`, as the local pool makes it.

Rows reach the launching process through files: each bundle appends its rows, formatted as
CSV cells, to a JSON-lines file of its own in `OUT.beam-rows/`, flushed row by row (beside
`OUT` on a shared filesystem, or under `rows_dir`, e.g. a bucket). After the job, the launcher
moves them into the `ResultJournal` (`OUT.partial`) and writes `OUT` as the local path does.
A bundle retried by the runner writes its rows again; they are the same and kept once. A
scan without a row after a finished job gets a "failed" row saying so, never a missing row;
a job that fails keeps its finished rows in `OUT.partial`, and `--resume` redoes the rest.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from brainage_tf.errors import JobFailedError, UsageError, one_line
from brainage_tf.preprocessing import PreprocessConfig
from brainage_tf.serving.batch import Interrupted, finished_row
from brainage_tf.serving.exported_model import ExportedModel
from brainage_tf.serving.journal import OK, ResultJournal, cell
from brainage_tf.serving.predictions import TOOL, Predictor, prediction_columns, provenance
from brainage_tf.serving.scans import ScanItem, item_keys
from brainage_tf.serving.workers import preprocess_path

# Scans per RunInference call. One, as the local path feeds them (predictions.py): a scan's age
# then never depends on its batch neighbours, and one preprocessed volume per worker waits in memory.
BATCH_SCANS = 1
# The folder beside OUT that workers write their rows to: OUT + this suffix.
ROWS_SUFFIX = ".beam-rows"
# Runner names that mean Beam's local FnApiRunner, as the ingest runs it (no Prism download).
LOCAL_RUNNERS = ("DirectRunner", "FnApiRunner")
_FAILED_TAG = "failed"
# The reason of a scan the job finished without a row for.
NO_ROW_REASON = "no row came back from the Beam job for this scan; rerun with --resume to predict it"


class ExportModelHandler(ModelHandler):
    """RunInference's handler for our exports: `tf.saved_model.load`, `serving_default` (`ExportedModel`).

    Beam's `TFModelHandlerNumpy` cannot load them (it calls `keras.models.load_model`, which
    Keras 3 refuses for SavedModel folders). Examples are (index, key, ScanItem, PreprocessedScan);
    predictions are (key, row) with the row `batch.finished_row` makes.
    """

    def __init__(self, export_dir: str):
        """Keeps only the path: each worker loads the export itself (`load_model`).

        Args:
            export_dir: The export version folder, at the same path on every worker.
        """
        super().__init__(min_batch_size=1, max_batch_size=BATCH_SCANS)
        self._export_dir = export_dir

    def load_model(self) -> ExportedModel:
        """The export, loaded once per worker process (RunInference shares it between bundles)."""
        return ExportedModel(self._export_dir)

    def run_inference(self, batch: Sequence[tuple], model: ExportedModel, inference_args=None) -> Iterable:
        """(key, row) per example; a scan the model fails on gets a failed row, as in the local path."""
        predictor = Predictor(model)
        return [(key, finished_row(index, item, scan, "", predictor)) for index, key, item, scan in batch]


class PreprocessScans(beam.DoFn):
    """(index, key, item) -> the preprocessed scan, or a failed (key, row) on the `failed` output."""

    def __init__(self, config: PreprocessConfig):
        self._config = config

    def setup(self):
        """Loads what the skull-stripping mode needs (its network) once per worker, not per scan."""
        from brainage_tf.skull_strip import prepare

        prepare(self._config.skull_strip)

    def process(self, element):
        index, key, item = element
        scan, reason = preprocess_path(item.path, self._config)
        if scan is None:
            yield beam.pvalue.TaggedOutput(_FAILED_TAG, (key, finished_row(index, item, None, reason, None)))
        else:
            yield index, key, item, scan


class WriteRows(beam.DoFn):
    """Appends each (key, row) as CSV cells to a file of this bundle's own, flushed row by row."""

    def __init__(self, folder: str, columns: Sequence[str]):
        self._folder, self._columns = folder, list(columns)
        self._handle = None

    def start_bundle(self):
        self._handle = None

    def process(self, element):
        key, row = element
        if self._handle is None:  # a bundle without rows leaves no file
            self._handle = FileSystems.create(FileSystems.join(self._folder, f"{uuid.uuid4().hex}.jsonl"))
        cells = [cell(row.get(column)) for column in self._columns]
        self._handle.write((json.dumps({"key": key, "cells": cells}) + "\n").encode())
        self._handle.flush()

    def finish_bundle(self):
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def rows_folder(out: Path, rows_dir: str | None = None) -> str:
    """Where the workers of a job predicting into `out` write their rows: beside `out`, or in `rows_dir`.

    `rows_dir` (a path or a URL Beam's filesystems take, e.g. gs://BUCKET/tmp) is for workers that
    do not mount the folder of `out` (Dataflow).
    """
    name = out.name + ROWS_SUFFIX
    return str(out.with_name(name)) if rows_dir is None else FileSystems.join(rows_dir, name)


def _row_files(folder: str) -> list[str]:
    """The row files in `folder`, in name order (none when it does not exist)."""
    try:
        matched = FileSystems.match([FileSystems.join(folder, "*.jsonl")])[0].metadata_list
    except BeamIOError:
        return []
    return sorted(metadata.path for metadata in matched)


def _clear(folder: str) -> None:
    """Removes the row files and, on a local filesystem, the folder."""
    files = _row_files(folder)
    if files:
        FileSystems.delete(files)
    if FileSystems.get_scheme(folder) is None:
        shutil.rmtree(folder, ignore_errors=True)


def collect_rows(folder: str, journal: ResultJournal, ok_only: bool = False) -> int:
    """Moves the rows the workers wrote into the journal (each key once); returns how many were new.

    Torn last lines (a worker killed mid-write) are skipped: their scans are redone.
    """
    added = 0
    status = journal.columns.index("status")
    for path in _row_files(folder):
        with FileSystems.open(path) as handle:
            lines = handle.read().decode().splitlines()
        for line in lines:
            try:
                record = json.loads(line)
                key, cells = record["key"], record["cells"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
            if key in journal.finished or len(cells) != len(journal.columns):
                continue
            if ok_only and cells[status] != OK:
                continue
            journal.append(key, dict(zip(journal.columns, cells, strict=True)))  # a cell formats as itself
            added += 1
    return added


def last_line(error: BaseException) -> str:
    """What a failed job's error says last: runners put a whole remote traceback in the message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return one_line(lines[-1] if lines else type(error).__name__)


def pipeline_for(beam_args: Sequence[str]) -> beam.Pipeline:
    """A pipeline on the runner the Beam flags name, made lossless on Beam's local runners.

    Raises:
        UsageError: The flags name no runner, or one Beam does not know.
    """
    from brainage_tf.ingest.direct_runner import local_runner, prepare_local_runner

    options = PipelineOptions(list(beam_args))
    runner = options.view_as(StandardOptions).runner
    if not runner:
        raise UsageError("--beam_pipeline_options names no runner: add --runner NAME")
    try:
        pipeline = beam.Pipeline(
            runner=local_runner(options) if runner in LOCAL_RUNNERS else None, options=options
        )
    except ValueError as error:  # Beam's word for a runner name it cannot load
        raise UsageError(f"--runner {runner}: {one_line(error)}") from None
    prepare_local_runner(pipeline)
    return pipeline


def run_job(
    model: ExportedModel, work: Sequence[tuple[int, str, ScanItem]], folder: str, pipeline: beam.Pipeline
) -> None:
    """Runs, as `pipeline`, the Beam job writing a row for each (index, key, item) of `work` into `folder`.

    Raises:
        JobFailedError: The job ended in a state other than DONE.
    """
    columns = prediction_columns(model)
    scans = (
        pipeline
        | "Scans" >> beam.Create(list(work))
        | "Spread" >> beam.Reshuffle()
        | "Preprocess"
        >> beam.ParDo(PreprocessScans(model.preprocess_config)).with_outputs(_FAILED_TAG, main="ok")
    )
    predicted = scans.ok | "Predict" >> RunInference(ExportModelHandler(str(model.path)))
    # A writer after each producer, not after a Flatten: fused with it, each row reaches disk as it is
    # made (measured: behind a Flatten the local runners wrote every row at the end of the stage).
    _ = predicted | "Write" >> beam.ParDo(WriteRows(folder, columns))
    _ = scans[_FAILED_TAG] | "WriteFailed" >> beam.ParDo(WriteRows(folder, columns))
    state = pipeline.run().wait_until_finish()
    if state != beam.runners.runner.PipelineState.DONE:
        raise JobFailedError(f"the job ended {state}")


def predict_on_beam(
    model: ExportedModel,
    items: Sequence[ScanItem],
    out: Path,
    beam_args: Sequence[str],
    resume: bool = False,
    rows_dir: str | None = None,
) -> dict[str, int]:
    """Predicts the items into `out` on a Beam runner: the CSV and sidecar the local `predict_to_csv` writes.

    Args:
        model: The export, loaded here for its columns, preprocessing and provenance.
        items: The scans, at the same paths on every worker.
        out: The CSV, on the launching machine.
        beam_args: Beam flags, e.g. ["--runner=PortableRunner", "--job_endpoint=embed", ...].
        resume: Keep the ok rows of an earlier run or failed job into `out`.
        rows_dir: Where the workers write rows (None: beside `out`); see `rows_folder`.

    Returns:
        {"rows", "ok", "failed"} of the written CSV.

    Raises:
        UsageError: As `predict_to_csv`, or Beam flags without a runner.
        JobFailedError: The job failed; its finished rows are in `out`'s partial file for `--resume`.
        Interrupted: SIGINT or SIGTERM; likewise.
    """
    pipeline = pipeline_for(beam_args)  # a bad runner stops here, before any file is written
    journal = ResultJournal(out, prediction_columns(model), provenance(model, TOOL), resume)
    folder = rows_folder(out, rows_dir)
    keys = item_keys(items)
    try:
        if resume:  # a failed job's rows: normally already in the partial file
            collect_rows(folder, journal, ok_only=True)
        _clear(folder)
        work = [(index, key, items[index]) for index, key in enumerate(keys) if key not in journal.finished]
        if work:
            FileSystems.mkdirs(folder)
            try:
                run_job(model, work, folder, pipeline)
            except (Exception, Interrupted) as error:
                collect_rows(folder, journal)  # what finished stays in the partial file for a resume
                if isinstance(error, Interrupted):
                    error.finished, error.total, error.kept_in = (
                        len(journal.finished),
                        len(items),
                        journal.partial,
                    )
                if isinstance(error, Interrupted | UsageError):
                    raise
                raise JobFailedError(
                    f"the Beam job failed ({last_line(error)}): {len(journal.finished)} of {len(items)} scans"
                    f" finished, kept in {journal.partial}; rerun with --resume to predict the rest"
                ) from None
            collect_rows(folder, journal)
            for index, key, item in work:
                if key not in journal.finished:
                    journal.append(
                        key, finished_row(index, item, None, f"{item.path}: {NO_ROW_REASON}", None)
                    )
    finally:
        journal.close()
    counts = journal.finish(keys)
    _clear(folder)
    return counts
