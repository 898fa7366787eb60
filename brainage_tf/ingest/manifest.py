"""The manifest layout: one CSV/TSV table that lists every scan with its age."""

from __future__ import annotations

import os
from pathlib import Path

from brainage_tf.ingest.ages import parse_age, require_columns
from brainage_tf.ingest.records import ScanRecord, cell_text, read_table, record_from_row, table_rows

MANIFEST_NAMES = ("manifest.csv", "manifest.tsv")


def read_manifest(manifest_path: str | os.PathLike, cohort: str = "") -> list[ScanRecord]:
    """Reads a CSV/TSV manifest: subject_id, <age column>, path[, session, sex, site].

    Relative paths are resolved against the manifest's folder. The age column is
    `age` or `age_years` (years), `age_months` or `age_days`, or `age` with an
    `age_unit` column (years|months|days per row).

    Args:
      manifest_path: The manifest file (.csv comma-separated, .tsv tab-separated).
      cohort: Cohort name stored in every record.

    Returns:
      One record per manifest row, in file order.

    Raises:
      CohortLayoutError: Missing required columns or ambiguous age columns.
    """
    manifest_path = Path(manifest_path).resolve()
    table = read_table(manifest_path)
    age_column = require_columns(
        manifest_path, list(table.columns), ("subject_id", "path"), "age (or age_years, age_months, age_days)"
    )
    return [
        record_from_row(
            row,
            parse_age(row, age_column),
            subject_id=cell_text(row["subject_id"]),
            session=cell_text(row.get("session", "")),
            cohort=cohort,
            root=manifest_path.parent,
            path=cell_text(row["path"]),
        )
        for row in table_rows(table)
    ]
