"""Skipped rows: their reason codes, the duplicate checks, and the skip report TSV.

Two kinds of duplicate are found. A (cohort, subject, session) listed more than
once is `duplicate` (`find_duplicates`, before the pipeline). The same image
content under two example keys is `duplicate_content` (`content_duplicates`, on
the preprocessed volumes' hashes), so one scan copied under another subject ID
cannot sit in both train and test.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

from apache_beam.io.filesystems import FileSystems

from brainage_tf.errors import IngestError
from brainage_tf.ingest.records import ScanRecord

SKIP_REPORT_HEADER = ("path", "subject", "reason")
DUPLICATE = "duplicate"
DUPLICATE_CONTENT = "duplicate_content"


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

    @classmethod
    def of(cls, record: ScanRecord, kind: str, detail: str) -> Skip:
        """The skip of `record` for reason `kind`."""
        return cls(record.path, record.subject_id, kind, detail)

    @property
    def reason(self) -> str:
        """Reason column of the report: "<kind>: <detail>"."""
        return f"{self.kind}: {self.detail}"

    @property
    def message(self) -> str:
        """The strict-mode error: "<path or subject>: <kind>: <detail>"."""
        return f"{self.path or self.subject}: {self.reason}"


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def skip_kind_of_error(error: Exception) -> str:
    """Reason code of a preprocessing error: UnreadableScanError -> "unreadable_scan"."""
    name = type(error).__name__
    return _snake_case(name[: -len("Error")] if name.endswith("Error") else name)


def find_duplicates(records: Sequence[ScanRecord]) -> dict[int, Skip]:
    """Finds records sharing (cohort, subject, session).

    All members of a duplicate group are reported, since none of them can be
    trusted to be the right one.

    Args:
      records: The records, in input order.

    Returns:
      Index of every duplicated record -> its `duplicate` skip, naming the other paths.
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
            duplicates[index] = Skip.of(
                records[index],
                DUPLICATE,
                f"subject {subject} session {session or '<none>'} is listed {len(indices)} times; "
                f"also at {', '.join(others)}",
            )
    return duplicates


def content_duplicates(same_content: Iterable[ScanRecord]) -> list[tuple[str, Skip]]:
    """Picks the copies to drop among records whose preprocessed volumes are identical.

    The record with the smallest key is kept, so the choice does not depend on
    the runner; every other one is skipped, also when it is another session of
    the same subject.

    Args:
      same_content: The records of one content hash.

    Returns:
      (example key, `duplicate_content` skip naming the kept subject and path)
      for every record but the kept one.
    """
    kept, *copies = sorted(same_content, key=lambda record: record.key)
    detail = (
        f"same image content as {kept.path} (subject {kept.subject_id}, session {kept.session or '<none>'}), "
        "which is kept"
    )
    return [(copy.key, Skip.of(copy, DUPLICATE_CONTENT, detail)) for copy in copies]


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
    return [dict(zip(SKIP_REPORT_HEADER, line.split("\t"), strict=False)) for line in lines[1:]]
