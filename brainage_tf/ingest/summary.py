"""`IngestSummary`: the row counts of one ingest run, and their `ingest_summary.json`.

The TFDS builders write the summary next to the prepared dataset; the training
side reads it back. This module imports neither Beam nor TensorFlow, so reading
a summary stays light.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

from brainage_tf.errors import IngestSummaryError

INGEST_SUMMARY_NAME = "ingest_summary.json"
SKIP_REPORT_NAME = "skip_report.tsv"


@dataclasses.dataclass(frozen=True)
class IngestSummary:
    """Row counts of one ingest run; rows_in == examples_written + skipped.

    The JSON keys of `to_json` are the field names.

    Attributes:
      rows_in: Records that entered the ingest.
      examples_written: Examples handed to the dataset writer.
      skipped: Rows skipped, all reasons.
      skipped_by_reason: Skip count per reason code, e.g. {"missing_age": 2}.
      skip_report: File name of the skip report, in the summary's folder.
    """

    rows_in: int
    examples_written: int
    skipped: int
    skipped_by_reason: Mapping[str, int]
    skip_report: str = SKIP_REPORT_NAME

    def accounting_problem(self, rows_listed: int) -> str | None:
        """Why the counts do not account for every listed row, or None when they do.

        Args:
          rows_listed: Records the builder handed to the ingest.
        """
        lost = rows_listed - self.examples_written - self.skipped
        if self.rows_in == rows_listed and lost == 0:
            return None
        return (
            f"{rows_listed} rows listed, {self.rows_in} counted in, {self.examples_written} written, "
            f"{self.skipped} skipped: {lost} rows are neither written nor skipped"
        )

    def storage_problem(self, stored_by_split: Mapping[str, int]) -> str | None:
        """Why the examples stored per split do not add up to those written, or None when they do.

        Args:
          stored_by_split: Examples the dataset's files hold, per split.
        """
        stored = sum(stored_by_split.values())
        if stored == self.examples_written:
            return None
        splits = ", ".join(f"{name} {count}" for name, count in stored_by_split.items())
        return (
            f"{self.examples_written} examples written but {stored} stored ({splits}): "
            f"{self.examples_written - stored} lost between the ingest and the files"
        )

    def line(self) -> str:
        """The closing log line: "N rows in, M examples written, K skipped"."""
        return f"{self.rows_in} rows in, {self.examples_written} examples written, {self.skipped} skipped"

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict keyed by field name."""
        return {**dataclasses.asdict(self), "skipped_by_reason": dict(self.skipped_by_reason)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IngestSummary:
        """Builds a summary from `to_json` output; extra keys are ignored.

        Raises:
          IngestSummaryError: `data` is not a dict, lacks a field, or has a
            count that is not an integer.
        """
        if not isinstance(data, Mapping):
            raise IngestSummaryError(f"ingest summary is a JSON {type(data).__name__}, not an object")
        missing = [field.name for field in dataclasses.fields(cls) if field.name not in data]
        if missing:
            raise IngestSummaryError(f"ingest summary lacks keys {', '.join(missing)}")
        by_reason = data["skipped_by_reason"]
        counts = [data["rows_in"], data["examples_written"], data["skipped"]]
        if not isinstance(by_reason, Mapping) or not all(
            _is_count(count) for count in [*counts, *by_reason.values()]
        ):
            raise IngestSummaryError("ingest summary has a count that is not a non-negative integer")
        return cls(*counts, skipped_by_reason=dict(by_reason), skip_report=str(data["skip_report"]))

    def write(self, path: str | os.PathLike) -> None:
        """Writes the summary as indented JSON; `path` may be on any TF/epath filesystem."""
        from etils import epath  # local and gs:// alike; imported late to keep this module light

        epath.Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | os.PathLike) -> IngestSummary:
        """Reads a summary written by `write`.

        Raises:
          IngestSummaryError: One line naming the file: missing, not JSON, or
            not a summary.
        """
        from etils import epath

        path = epath.Path(path)
        try:
            return cls.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            raise IngestSummaryError(f"{path}: no ingest summary there; build the dataset first") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, IngestSummaryError) as error:
            raise IngestSummaryError(f"{path}: unreadable ingest summary ({error})") from error


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
