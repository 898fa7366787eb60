"""The BIDS layout: participants.tsv, sub-*/[ses-*/]anat/*_T1w.nii[.gz], sessions tables.

BIDS states ages in years; a `participants.json` `age.Units` entry or a
unit-named column overrides that (see `brainage_tf.ingest.ages`). The optional
ground-truth columns `tempo` (participants.tsv) and `developmental_age` (beside
each age) are read into the records when present.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from brainage_tf.defaults import DEVELOPMENTAL_AGE_COLUMN, TEMPO_COLUMN
from brainage_tf.errors import CohortLayoutError
from brainage_tf.ingest.ages import AgeColumn, ParsedAge, find_age_column, parse_age
from brainage_tf.ingest.records import ScanRecord, cell_text, read_table, record_from_row, table_rows

BIDS_MARKERS = ("participants.tsv", "dataset_description.json")
_BIDS_T1W = re.compile(
    r"^(sub-[A-Za-z0-9]+)(?:_(ses-[A-Za-z0-9]+))?(?:_[a-z]+-[A-Za-z0-9]+)*_T1w\.nii(\.gz)?$"
)


def _bids_age_units(root: Path) -> str | None:
    sidecar = root / "participants.json"
    if not sidecar.exists():
        return None
    try:
        description = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CohortLayoutError(f"{sidecar}: unreadable JSON ({error})") from error
    for key, value in description.items():
        if key.lower() == "age" and isinstance(value, dict) and "Units" in value:
            return str(value["Units"])
    return None


SessionRows = dict[tuple[str, str], tuple[dict[str, str], AgeColumn | None]]


def _truth_value(row: Mapping[str, str], column: str, table: Path) -> float | None:
    """An optional ground-truth cell as a number: None when the table lacks it or leaves it empty."""
    text = cell_text(row.get(column, ""))
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise CohortLayoutError(f"{table}: {column} {text!r} is not a finite number")
    return value


def _session_rows(root: Path, sidecar_units: str | None) -> SessionRows:
    """(subject, session) -> (its row of sub-X/sub-X_sessions.tsv, that table's age column)."""
    session_rows = {}
    for sessions_path in sorted(root.glob("sub-*/sub-*_sessions.tsv")):
        table = read_table(sessions_path)
        age_column = find_age_column(sessions_path, list(table.columns), sidecar_units)
        for row in table_rows(table):
            session_rows[(sessions_path.parent.name, cell_text(row.get("session_id", "")))] = (
                row,
                age_column,
            )
    return session_rows


def read_bids(root: str | os.PathLike, cohort: str = "") -> list[ScanRecord]:
    """Reads a BIDS folder's T1-weighted scans with ages from its tables.

    Ages come from `sub-X/sub-X_sessions.tsv` for the session when it lists one,
    else from `participants.tsv`. A participant listed without any T1w file
    becomes a record with no path.

    Args:
      root: The BIDS dataset folder.
      cohort: Cohort name stored in every record.

    Returns:
      One record per T1w file (sorted by path), then one per scan-less participant.

    Raises:
      CohortLayoutError: No participants.tsv, or it lacks `participant_id`.
    """
    root = Path(root).resolve()
    participants_path = root / "participants.tsv"
    if not participants_path.exists():
        raise CohortLayoutError(f"{root}: BIDS folder without participants.tsv")
    participants = read_table(participants_path)
    if "participant_id" not in [column.lower() for column in participants.columns]:
        raise CohortLayoutError(f"{participants_path}: missing column participant_id")
    sidecar_units = _bids_age_units(root)
    participant_age = find_age_column(participants_path, list(participants.columns), sidecar_units)
    rows_by_subject = {cell_text(row["participant_id"]): row for row in table_rows(participants)}
    session_rows = _session_rows(root, sidecar_units)

    records = []
    for scan_path in sorted(root.glob("sub-*/**/anat/*_T1w.nii*")):
        match = _BIDS_T1W.match(scan_path.name)
        if match is None:
            continue
        subject, session = match.group(1), match.group(2) or ""
        participant = rows_by_subject.get(subject, {})
        age = ParsedAge(None, "")
        # The developmental age is read from the row the age comes from.
        truth_row, truth_table = participant, participants_path
        if (subject, session) in session_rows:
            age = parse_age(*session_rows[(subject, session)])
            truth_row, truth_table = (
                session_rows[(subject, session)][0],
                root / subject / f"{subject}_sessions.tsv",
            )
        if age.years is None and not age.written:
            age = parse_age(participant, participant_age)
            truth_row, truth_table = participant, participants_path
        record = record_from_row(
            participant,
            age,
            subject_id=subject,
            session=session,
            cohort=cohort,
            root=root,
            path=str(scan_path),
        )
        records.append(
            dataclasses.replace(
                record,
                tempo=_truth_value(participant, TEMPO_COLUMN, participants_path),
                developmental_age=_truth_value(truth_row, DEVELOPMENTAL_AGE_COLUMN, truth_table),
            )
        )
    subjects_with_scans = {record.subject_id for record in records}
    records += [
        record_from_row(
            participant,
            parse_age(participant, participant_age),
            subject_id=subject,
            session="",
            cohort=cohort,
            root=root,
        )
        for subject, participant in rows_by_subject.items()
        if subject not in subjects_with_scans
    ]
    return records
