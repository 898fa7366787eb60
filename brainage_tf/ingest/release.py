"""The release layout (as NIH-PD ships it): a demographics table plus scan files.

Scans can sit anywhere below the table's folder in MINC, NIfTI or MGZ and are
matched to rows by a `<subject_id>_<visit>` token in their file name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from brainage_tf.defaults import SCAN_SUFFIXES
from brainage_tf.ingest.ages import ParsedAge, parse_age, require_columns
from brainage_tf.ingest.records import ScanRecord, cell_text, read_table, record_from_row, table_rows

DEMOGRAPHICS_NAMES = ("demographics.csv", "demographics.tsv")
_VISIT_TOKEN = re.compile(r"(?:^|[_\-.])([A-Za-z0-9]+)_([Vv][A-Za-z0-9]+)(?=[_\-.])")


def _is_scan(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and any(name.endswith(suffix) for suffix in SCAN_SUFFIXES)


def _scans_by_visit(root: Path) -> dict[tuple[str, str], list[Path]]:
    """(subject, upper-case visit) -> scan files below `root` named for it, sorted."""
    scans_by_visit: dict[tuple[str, str], list[Path]] = {}
    for scan_path in sorted(root.rglob("*")):
        # The .img of an Analyze pair is the scan; its .hdr would count it twice.
        if not _is_scan(scan_path) or scan_path.name.lower().endswith(".hdr"):
            continue
        match = _VISIT_TOKEN.search(scan_path.name)
        if match is not None:
            scans_by_visit.setdefault((match.group(1), match.group(2).upper()), []).append(scan_path)
    return scans_by_visit


def read_release(demographics_path: str | os.PathLike, cohort: str = "") -> list[ScanRecord]:
    """Reads a NIH-PD style release: a demographics table plus scan files.

    The table has `subject_id`, `visit` and an age column (`age_days`,
    `age_months`, `age_years` or `age` = years), optionally `sex` and `site`.
    A scan belongs to a row when its file name contains `<subject_id>_<visit>`
    as whole tokens (e.g. `nihpd_1001_V2_t1w.mnc`), anywhere below the table's
    folder. Header-only `.hdr` files of Analyze pairs are not counted twice.

    Args:
      demographics_path: The demographics table (.csv or .tsv).
      cohort: Cohort name stored in every record.

    Returns:
      One record per matched scan, one per row without a scan (no path), and
      one per scan without a row (no age), sorted by subject and visit.

    Raises:
      CohortLayoutError: Missing required columns.
    """
    demographics_path = Path(demographics_path).resolve()
    root = demographics_path.parent
    table = read_table(demographics_path)
    age_column = require_columns(
        demographics_path,
        list(table.columns),
        ("subject_id", "visit"),
        "age_days (or age_months, age_years, age)",
    )
    scans_by_visit = _scans_by_visit(root)

    records = []
    listed = set()
    for row in table_rows(table):
        subject, visit = cell_text(row["subject_id"]), cell_text(row["visit"]).upper()
        listed.add((subject, visit))
        age = parse_age(row, age_column)
        records += [
            record_from_row(
                row, age, subject_id=subject, session=visit, cohort=cohort, root=root, path=str(path)
            )
            for path in scans_by_visit.get((subject, visit), [""])
        ]
    for (subject, visit), scan_paths in sorted(scans_by_visit.items()):
        if (subject, visit) in listed:
            continue
        records += [
            record_from_row(
                {},
                ParsedAge(None, ""),
                subject_id=subject,
                session=visit,
                cohort=cohort,
                root=root,
                path=str(path),
            )
            for path in scan_paths
        ]
    return sorted(records, key=lambda record: (record.subject_id, record.session, record.path))
