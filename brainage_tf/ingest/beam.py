"""The one Beam transform every TFDS builder uses to turn records into examples.

`IngestScans` takes (split, ScanRecord) pairs, checks each record (duplicate
(cohort, subject, session), age, file present), runs
`brainage_tf.preprocessing.preprocess_scan` on the good ones, drops copies of
the same image content under other keys, and returns one PCollection of
(key, example) per split. Every bad row is counted with Beam metrics under
`brainage_tf.ingest` and written to a skip report (TSV: path, subject, reason);
with `strict=True` the first bad row fails the pipeline. After the run,
`summarize` reads the counters back into an `IngestSummary`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import Metrics, MetricsFilter

from brainage_tf.defaults import DEVELOPMENTAL_AGE_COLUMN, STORED_VOLUME_DTYPE, TEMPO_COLUMN
from brainage_tf.errors import IngestError, ScanError
from brainage_tf.ingest.ages import age_problem
from brainage_tf.ingest.build_progress import mark_done
from brainage_tf.ingest.records import ScanRecord
from brainage_tf.ingest.skips import (
    Skip,
    content_duplicates,
    find_duplicates,
    skip_kind_of_error,
    write_skip_report,
)
from brainage_tf.ingest.summary import IngestSummary

METRICS_NAMESPACE = "brainage_tf.ingest"
ROWS_IN = "rows_in"
EXAMPLES_WRITTEN = "examples_written"
SKIPPED = "skipped"
_SKIPPED_TAG = "__skipped__"
_CONTENT_TAG = "__content__"


def _count_skip(kind: str) -> None:
    Metrics.counter(METRICS_NAMESPACE, SKIPPED).inc()
    Metrics.counter(METRICS_NAMESPACE, f"{SKIPPED}_{kind}").inc()


def content_hash(volume: np.ndarray) -> str:
    """SHA-256 of a stored model-input volume: equal for a copy in any format or orientation."""
    return hashlib.sha256(np.ascontiguousarray(volume, dtype=STORED_VOLUME_DTYPE).tobytes()).hexdigest()


def _example(record: ScanRecord, volume: np.ndarray, registration_ncc: float) -> dict:
    return {
        "volume": volume,
        "age": np.float32(record.age_years),
        "sex": record.sex,
        "site": record.site,
        "subject_id": record.subject_id,
        "session": record.session,
        "source_path": record.source_path,
        "registration_ncc": np.float32(registration_ncc),
        # Ground truth only a synthetic cohort knows; NaN says "not listed".
        TEMPO_COLUMN: np.float32(np.nan if record.tempo is None else record.tempo),
        DEVELOPMENTAL_AGE_COLUMN: np.float32(
            np.nan if record.developmental_age is None else record.developmental_age
        ),
    }


class PreprocessRecordFn(beam.DoFn):
    """Validates and preprocesses one record; emits the example and its content hash, or a Skip."""

    def __init__(
        self,
        preprocess_config,
        strict: bool,
        age_ranges: Mapping[str, tuple[float, float]] | None = None,
        progress_folder: str | None = None,
    ):
        """Creates the DoFn.

        Args:
          preprocess_config: The `brainage_tf.preprocessing.PreprocessConfig`.
          strict: Raise `IngestError` on the first bad row instead of skipping it.
          age_ranges: Cohort name -> its (youngest, oldest) age in years; a cohort not in it has no range.
          progress_folder: Where each finished row is marked for the launcher's progress lines; None: nowhere.
        """
        super().__init__()
        self._config = preprocess_config
        self._strict = strict
        self._age_ranges = dict(age_ranges or {})
        self._progress_folder = progress_folder
        self._rows_in = Metrics.counter(METRICS_NAMESPACE, ROWS_IN)

    def setup(self):
        """Loads what the skull-stripping mode needs (its network) once per worker, not per scan."""
        from brainage_tf.skull_strip import prepare

        prepare(self._config.skull_strip)

    def _skip(self, record: ScanRecord, kind: str, detail: str):
        return self._report(Skip.of(record, kind, detail))

    def _report(self, skip: Skip):
        if self._strict:
            raise IngestError(skip.message)
        _count_skip(skip.kind)
        return beam.pvalue.TaggedOutput(_SKIPPED_TAG, skip)

    def process(self, element: tuple[str, ScanRecord, Skip | None, int]):
        """Yields (key, example) tagged with the split and (hash, record), or a Skip; marks the row done.

        Args:
          element: (split name, record, its `duplicate` skip or None, its index among the rows).
        """
        split, record, duplicate, index = element
        self._rows_in.inc()
        outputs = list(self._outputs(split, record, duplicate))
        if self._progress_folder is not None:
            skipped = any(getattr(output, "tag", None) == _SKIPPED_TAG for output in outputs)
            mark_done(self._progress_folder, index, skipped)
        yield from outputs

    def _outputs(self, split: str, record: ScanRecord, duplicate: Skip | None):
        from brainage_tf.preprocessing import preprocess_scan  # heavy: load on workers

        if duplicate is not None:
            yield self._report(duplicate)
            return
        problem = age_problem(record, self._age_ranges.get(record.cohort))
        if problem is not None:
            yield self._skip(record, *problem)
            return
        if not record.path:
            where = f"session {record.session}" if record.session else "this subject"
            yield self._skip(record, "missing_file", f"no scan file listed or found for {where}")
            return
        if not FileSystems.exists(record.path):
            yield self._skip(record, "missing_file", "file does not exist")
            return
        if not split:
            raise IngestError(f"{record.path}: record has a valid age but no split assigned")
        try:
            scan = preprocess_scan(record.path, self._config)
        except ScanError as error:
            yield self._skip(record, skip_kind_of_error(error), error.reason)
            return
        volume = scan.volume.astype(STORED_VOLUME_DTYPE)
        if not np.all(np.isfinite(volume)):
            yield self._skip(record, "float16_overflow", "preprocessed volume does not fit float16")
            return
        yield beam.pvalue.TaggedOutput(_CONTENT_TAG, (content_hash(volume), record))
        yield beam.pvalue.TaggedOutput(
            split, (record.key, _example(record, volume, scan.metadata.registration_ncc))
        )


def _find_copies(hash_and_records: tuple[str, Iterable[ScanRecord]], strict: bool) -> list[tuple[str, Skip]]:
    """(key, Skip) of every copy among one content hash's records; raises in strict mode."""
    copies = content_duplicates(hash_and_records[1])
    if strict and copies:
        raise IngestError(copies[0][1].message)
    return copies


class DropCopiesFn(beam.DoFn):
    """Passes an example on unless its key is a dropped copy; counts both outcomes."""

    def __init__(self):
        super().__init__()
        self._written = Metrics.counter(METRICS_NAMESPACE, EXAMPLES_WRITTEN)

    def process(self, key_example: tuple[str, dict], copies: Mapping[str, Skip]):
        """Yields `key_example` unless `copies` (a side input) lists its key."""
        skip = copies.get(key_example[0])
        if skip is not None:
            _count_skip(skip.kind)
            return
        self._written.inc()
        yield key_example


class IngestScans(beam.PTransform):
    """Records -> validated, preprocessed, de-duplicated examples per split, plus a skip report.

    Apply to a pipeline (PBegin). The output is a dict split -> PCollection of
    (key, example dict) ready for a TFDS builder's `_split_generators`.
    """

    def __init__(
        self,
        records: Sequence[tuple[str, ScanRecord]],
        preprocess_config,
        split_names: Sequence[str],
        skip_report_path: str,
        strict: bool = False,
        age_ranges: Mapping[str, tuple[float, float]] | None = None,
        progress_folder: str | None = None,
    ):
        """Creates the transform.

        Args:
          records: (split name, record) pairs; split "" for a record whose
            subject has no usable age (it will be skipped).
          preprocess_config: `brainage_tf.preprocessing.PreprocessConfig`.
          split_names: Every split the builder declares, even if empty.
          skip_report_path: Where the skip report TSV is written.
          strict: Fail on the first bad row instead of skipping it.
          age_ranges: Cohort name -> its (youngest, oldest) age in years; a row outside is skipped
            as `outside_age_range`.
          progress_folder: Where workers mark finished rows (`build_progress`); None: nowhere.

        Raises:
          IngestError: A record assigned to a split not in `split_names`.
        """
        super().__init__()
        unknown = {split for split, _ in records if split and split not in split_names}
        if unknown:
            raise IngestError(f"records assigned to undeclared splits {sorted(unknown)}")
        self._records = list(records)
        self._config = preprocess_config
        self._split_names = list(split_names)
        self._skip_report_path = skip_report_path
        self._strict = strict
        self._age_ranges = age_ranges
        self._progress_folder = progress_folder

    def expand(self, pbegin):
        duplicates = find_duplicates([record for _, record in self._records])
        if self._strict and duplicates:
            raise IngestError(duplicates[min(duplicates)].message)
        elements = [
            (split, record, duplicates.get(index), index)
            for index, (split, record) in enumerate(self._records)
        ]
        processed = (
            pbegin
            | "CreateRecords" >> beam.Create(elements)
            | "Preprocess"
            >> beam.ParDo(
                PreprocessRecordFn(self._config, self._strict, self._age_ranges, self._progress_folder)
            ).with_outputs(_SKIPPED_TAG, _CONTENT_TAG, *self._split_names)
        )
        # Only hashes and records go through the shuffle; the volumes stay put.
        copies = (
            processed[_CONTENT_TAG]
            | "GroupByContent" >> beam.GroupByKey()
            | "FindCopies" >> beam.FlatMap(_find_copies, self._strict)
        )
        _ = (
            (processed[_SKIPPED_TAG], copies | "CopySkips" >> beam.Values())
            | "AllSkips" >> beam.Flatten()
            | "CollectSkips" >> beam.combiners.ToList()
            | "WriteSkipReport" >> beam.Map(write_skip_report, self._skip_report_path)
        )
        copies_by_key = beam.pvalue.AsDict(copies)
        return {
            split: processed[split] | f"DropCopies_{split}" >> beam.ParDo(DropCopiesFn(), copies_by_key)
            for split in self._split_names
        }


def summarize(pipeline_result) -> IngestSummary:
    """Reads the ingest counters of a finished pipeline.

    Args:
      pipeline_result: The `PipelineResult` of the run.

    Returns:
      The run's counts (committed values, attempted where a runner lacks them).
    """
    counters = pipeline_result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    totals: dict[str, int] = {}
    for counter in counters:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + int(value or 0)
    prefix = f"{SKIPPED}_"
    by_reason = {
        name[len(prefix) :]: count for name, count in sorted(totals.items()) if name.startswith(prefix)
    }
    return IngestSummary(
        rows_in=totals.get(ROWS_IN, 0),
        examples_written=totals.get(EXAMPLES_WRITTEN, 0),
        skipped=totals.get(SKIPPED, 0),
        skipped_by_reason=by_reason,
    )
