"""The one Beam transform every TFDS builder uses to turn records into examples.

`IngestScans` takes (split, ScanRecord) pairs, checks each record (duplicate
(cohort, subject, session), age, file present), runs
`brainage_tf.preprocessing.preprocess_scan` on the good ones, and returns one
PCollection of (key, example) per split. Every bad row is counted with Beam
metrics under `brainage_tf.ingest` and written to a skip report (TSV: path,
subject, reason); with `strict=True` the first bad row fails the pipeline.
After the run, `summarize` reads the counters back and `IngestSummary.line()`
gives "N rows in, M examples written, K skipped".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import Metrics, MetricsFilter

from brainage_tf.ingest.records import ScanRecord, age_problem

METRICS_NAMESPACE = "brainage_tf.ingest"
ROWS_IN = "rows_in"
EXAMPLES_WRITTEN = "examples_written"
SKIPPED = "skipped"
SKIP_REPORT_HEADER = ("path", "subject", "reason")
_SKIPPED_TAG = "__skipped__"


class IngestError(ValueError):
    """A bad row in strict mode, or an inconsistent ingest request."""


@dataclasses.dataclass(frozen=True)
class Skip:
    """One skipped row of the skip report.

    Attributes:
      path: The scan path ("" when the row names no file).
      subject: The subject ID.
      kind: Short reason code, also the suffix of its Beam counter.
      detail: Human-readable explanation.
    """

    path: str
    subject: str
    kind: str
    detail: str

    @property
    def reason(self) -> str:
        """Reason column of the report: "<kind>: <detail>"."""
        return f"{self.kind}: {self.detail}"


@dataclasses.dataclass(frozen=True)
class IngestSummary:
    """Row counts of one ingest run, read back from the Beam counters.

    Attributes:
      rows_in: Records that entered the transform.
      examples_written: Examples handed to the dataset writer.
      skipped: Rows skipped, all reasons.
      skipped_by_kind: Skip count per reason code.
    """

    rows_in: int
    examples_written: int
    skipped: int
    skipped_by_kind: Mapping[str, int]

    def line(self) -> str:
        """The closing log line: "N rows in, M examples written, K skipped"."""
        return f"{self.rows_in} rows in, {self.examples_written} examples written, {self.skipped} skipped"


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def skip_kind_of_error(error: Exception) -> str:
    """Reason code of a preprocessing error: UnreadableScanError -> "unreadable_scan"."""
    name = type(error).__name__
    return _snake_case(name[: -len("Error")] if name.endswith("Error") else name)


def find_duplicates(records: Sequence[ScanRecord]) -> dict[int, str]:
    """Finds records sharing (cohort, subject, session).

    All members of a duplicate group are reported, since none of them can be
    trusted to be the right one.

    Args:
      records: The records, in input order.

    Returns:
      Index of every duplicated record -> explanation naming the other paths.
    """
    groups: dict[tuple[str, str, str], list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault((record.cohort, record.subject_id, record.session), []).append(index)
    duplicates = {}
    for (_, subject, session), indices in groups.items():
        if len(indices) < 2:
            continue
        for index in indices:
            others = [records[other].path or "<no file>" for other in indices if other != index]
            duplicates[index] = (
                f"subject {subject} session {session or '<none>'} is listed {len(indices)} times; "
                f"also at {', '.join(others)}"
            )
    return duplicates


def _example(record: ScanRecord, volume: np.ndarray, registration_ncc: float) -> dict:
    return {
        "volume": volume.astype(np.float16),
        "age": np.float32(record.age_years),
        "sex": record.sex,
        "site": record.site,
        "subject_id": record.subject_id,
        "session": record.session,
        "source_path": record.source_path,
        "registration_ncc": np.float32(registration_ncc),
    }


class PreprocessRecordFn(beam.DoFn):
    """Validates and preprocesses one record; emits the example or a Skip."""

    def __init__(self, preprocess_config, strict: bool):
        """Creates the DoFn.

        Args:
          preprocess_config: The `brainage_tf.preprocessing.PreprocessConfig`.
          strict: Raise `IngestError` on the first bad row instead of skipping it.
        """
        super().__init__()
        self._config = preprocess_config
        self._strict = strict
        self._rows_in = Metrics.counter(METRICS_NAMESPACE, ROWS_IN)
        self._written = Metrics.counter(METRICS_NAMESPACE, EXAMPLES_WRITTEN)
        self._skipped = Metrics.counter(METRICS_NAMESPACE, SKIPPED)

    def _skip(self, record: ScanRecord, kind: str, detail: str):
        skip = Skip(record.path, record.subject_id, kind, detail)
        if self._strict:
            raise IngestError(f"{record.path or record.subject_id}: {skip.reason}")
        self._skipped.inc()
        Metrics.counter(METRICS_NAMESPACE, f"{SKIPPED}_{kind}").inc()
        return beam.pvalue.TaggedOutput(_SKIPPED_TAG, skip)

    def process(self, element: tuple[str, ScanRecord, str]):
        """Yields (key, example) tagged with the split, or a Skip tagged as skipped.

        Args:
          element: (split name, record, duplicate explanation or "").
        """
        from brainage_tf.preprocessing import ScanError, preprocess_scan  # heavy: load on workers

        split, record, duplicate = element
        self._rows_in.inc()
        if duplicate:
            yield self._skip(record, "duplicate", duplicate)
            return
        problem = age_problem(record)
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
            yield self._skip(record, skip_kind_of_error(error), getattr(error, "reason", str(error)))
            return
        volume = scan.volume
        if not np.all(np.isfinite(volume.astype(np.float16))):
            yield self._skip(record, "float16_overflow", "preprocessed volume does not fit float16")
            return
        self._written.inc()
        yield beam.pvalue.TaggedOutput(split, (record.key, _example(record, volume, scan.metadata.registration_ncc)))


def write_skip_report(skips: Sequence[Skip], report_path: str) -> int:
    """Writes the skip report TSV (header path, subject, reason), sorted by path.

    Args:
      skips: All skipped rows.
      report_path: Destination; any Beam filesystem (local, gs://, hdfs://).

    Returns:
      Number of rows written.
    """
    lines = ["\t".join(SKIP_REPORT_HEADER)]
    for skip in sorted(skips, key=lambda skip: (skip.path, skip.subject, skip.reason)):
        fields = (skip.path, skip.subject, skip.reason)
        lines.append("\t".join(field.replace("\t", " ").replace("\n", " ") for field in fields))
    with FileSystems.create(report_path) as report:
        report.write(("\n".join(lines) + "\n").encode("utf-8"))
    return len(skips)


def read_skip_report(report_path: str) -> list[dict[str, str]]:
    """Reads a skip report back as a list of {path, subject, reason} rows."""
    with FileSystems.open(report_path) as report:
        lines = report.read().decode("utf-8").splitlines()
    header = tuple(lines[0].split("\t"))
    if header != SKIP_REPORT_HEADER:
        raise IngestError(f"{report_path}: not a skip report (header {header})")
    return [dict(zip(SKIP_REPORT_HEADER, line.split("\t"))) for line in lines[1:]]


class IngestScans(beam.PTransform):
    """Records -> validated, preprocessed examples per split, plus a skip report.

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
    ):
        """Creates the transform.

        Args:
          records: (split name, record) pairs; split "" for a record whose
            subject has no usable age (it will be skipped).
          preprocess_config: `brainage_tf.preprocessing.PreprocessConfig`.
          split_names: Every split the builder declares, even if empty.
          skip_report_path: Where the skip report TSV is written.
          strict: Fail on the first bad row instead of skipping it.

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

    def expand(self, pbegin):
        duplicates = find_duplicates([record for _, record in self._records])
        if self._strict and duplicates:
            first = min(duplicates)
            raise IngestError(f"{self._records[first][1].path}: duplicate: {duplicates[first]}")
        elements = [
            (split, record, duplicates.get(index, "")) for index, (split, record) in enumerate(self._records)
        ]
        processed = (
            pbegin
            | "CreateRecords" >> beam.Create(elements)
            | "Preprocess"
            >> beam.ParDo(PreprocessRecordFn(self._config, self._strict)).with_outputs(
                _SKIPPED_TAG, *self._split_names
            )
        )
        _ = (
            processed[_SKIPPED_TAG]
            | "CollectSkips" >> beam.combiners.ToList()
            | "WriteSkipReport" >> beam.Map(write_skip_report, self._skip_report_path)
        )
        return {split: processed[split] for split in self._split_names}


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
    by_kind = {name[len(prefix) :]: count for name, count in sorted(totals.items()) if name.startswith(prefix)}
    return IngestSummary(
        rows_in=totals.get(ROWS_IN, 0),
        examples_written=totals.get(EXAMPLES_WRITTEN, 0),
        skipped=totals.get(SKIPPED, 0),
        skipped_by_kind=by_kind,
    )
