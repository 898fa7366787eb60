"""The rows of a finished predictions CSV as the report reads them: numbers parsed, flags named."""

from __future__ import annotations

import csv
import dataclasses
import math
import re
from collections.abc import Sequence
from pathlib import Path

from brainage_tf.serving.journal import FAILED
from brainage_tf.serving.scans import ScanItem, folder_names

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Longest part of a page's file name taken from the scan's name (characters).
_LONGEST_NAME = 60


def _number(text: str | None) -> float | None:
    """A CSV cell as a float, None when empty or not a finite number."""
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


@dataclasses.dataclass(frozen=True)
class ReportScan:
    """One scan's row, as its page and the index show it.

    Attributes:
        index: Position in the run (0-based, the CSV's order).
        page: The page's file name, safe in a URL and on any file system.
        label: How the scan is named: subject[_session], else its file name.
        row: The CSV cells as read (strings), for the fields shown as text.
    """

    index: int
    page: str
    label: str
    row: dict[str, str]

    def value(self, column: str) -> float | None:
        """The column's number, None when empty (age unknown, failed scan, no norms)."""
        return _number(self.row.get(column))

    @property
    def failed(self) -> bool:
        """Preprocessing or prediction failed: the row has a reason, no age."""
        return self.row.get("status") == FAILED

    @property
    def ood(self) -> bool:
        """Flagged out of the training scans' ranges."""
        return self.row.get("ood") == "True"

    @property
    def gap(self) -> tuple[str, float | None]:
        """(name, value) of the gap the report plots: bias-corrected when the export has norms."""
        corrected = self.value("corrected_brain_age_gap")
        if corrected is not None:
            return "bias-corrected brain-age gap", corrected
        return "brain-age gap", self.value("brain_age_gap")


def read_scans(csv_path: Path, items: Sequence[ScanItem]) -> list[ReportScan]:
    """The scans of a finished predictions CSV, whose rows follow `items` one for one."""
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if len(rows) != len(items):
        raise ValueError(f"{csv_path}: {len(rows)} rows for {len(items)} scans")
    scans = []
    for index, (row, label) in enumerate(zip(rows, folder_names(items), strict=True)):
        page = f"{index + 1:04d}_{_UNSAFE.sub('_', label)[:_LONGEST_NAME]}.html"
        scans.append(ReportScan(index, page, label, row))
    return scans
