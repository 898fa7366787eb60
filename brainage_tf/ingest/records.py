"""Read a cohort on disk into `ScanRecord`s, one per listed scan.

Three layouts are understood (see docs/ingest.md):

* ``manifest``: a ``manifest.csv`` or ``manifest.tsv`` with columns
  ``subject_id, <age column>, path[, session, sex, site]``.
* ``bids``: a BIDS folder (``participants.tsv``, ``sub-*/[ses-*/]anat/*_T1w.nii[.gz]``,
  optional ``sub-*/sub-*_sessions.tsv``).
* ``release``: a NIH-PD style release, a ``demographics.csv`` or
  ``demographics.tsv`` with ``subject_id, visit, <age column>[, sex, site]`` and
  scans anywhere below the folder named ``*<subject_id>_<visit>*`` in MINC,
  NIfTI or MGZ.

The age unit is always stated, never guessed: the age column's name carries it
(``age`` and ``age_years`` are years, ``age_months``, ``age_days``), or an
``age_unit`` column states it per row, or for BIDS the ``participants.json``
sidecar's ``Units``. Readers never drop a row: a missing age or missing file is
kept in the record and becomes a counted skip in the Beam stage.

Only the standard library and pandas are used here, so the readers run in the
main process before the pipeline starts, on any machine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

AGE_UNITS_TO_YEARS: Mapping[str, float] = {
    "years": 1.0,
    "months": 1.0 / 12.0,
    "days": 1.0 / 365.25,
}
MIN_PLAUSIBLE_AGE_YEARS = -1.0
MAX_PLAUSIBLE_AGE_YEARS = 100.0
SCAN_SUFFIXES = (".nii", ".nii.gz", ".mnc", ".mnc.gz", ".mgz", ".mgh", ".img", ".hdr")
MANIFEST_NAMES = ("manifest.csv", "manifest.tsv")
DEMOGRAPHICS_NAMES = ("demographics.csv", "demographics.tsv")
BIDS_MARKERS = ("participants.tsv", "dataset_description.json")
NOT_AVAILABLE = "n/a"


class CohortLayoutError(ValueError):
    """A cohort folder or table that cannot be read as any supported layout."""


@dataclasses.dataclass(frozen=True)
class ScanRecord:
    """One listed scan with its labels, before any validation.

    Attributes:
      subject_id: Subject identifier as written in the source table.
      session: Session or visit label, "" for a cross-sectional scan.
      path: Absolute path of the scan file, "" when the table lists a visit
        that has no scan on disk.
      source_path: Path relative to the cohort root, stored in the dataset.
      age_years: Age at scan in years, None when missing or unparseable.
      age_text: The age as written with its column, e.g. "age_months=14",
        "" when the table has no age for this scan.
      sex: "M", "F" or "n/a".
      site: Acquisition site, "" when unknown.
      cohort: Cohort name; duplicate checks and example keys are per cohort.
    """

    subject_id: str
    session: str
    path: str
    source_path: str
    age_years: float | None
    age_text: str
    sex: str = NOT_AVAILABLE
    site: str = ""
    cohort: str = ""

    @property
    def key(self) -> str:
        """Unique, machine-independent example key: cohort/subject/session."""
        return f"{self.cohort}/{self.subject_id}/{self.session}"


def age_problem(record: ScanRecord) -> tuple[str, str] | None:
    """Returns why the record's age is unusable, or None when it is fine.

    Ages outside -1 to 100 years are implausible, and negative ages are rejected
    as well, so the accepted range is 0 to 100 years inclusive.

    Args:
      record: The record to check.

    Returns:
      (reason code, explanation), e.g. ("negative_age", "age -0.500 years
      (age=-0.5)"), or None.
    """
    if record.age_years is None or not math.isfinite(record.age_years):
        if record.age_text:
            return "unparseable_age", f"age not a number in a stated unit ({record.age_text})"
        return "missing_age", "no age for this scan"
    age = record.age_years
    if age < MIN_PLAUSIBLE_AGE_YEARS or age > MAX_PLAUSIBLE_AGE_YEARS:
        return "implausible_age", (
            f"age {age:.3f} years ({record.age_text}) outside "
            f"{MIN_PLAUSIBLE_AGE_YEARS:g} to {MAX_PLAUSIBLE_AGE_YEARS:g} years"
        )
    if age < 0:
        return "negative_age", f"age {age:.3f} years ({record.age_text})"
    return None


def normalize_sex(value: object) -> str:
    """Maps M/male/F/female (any case) to "M"/"F" and anything else to "n/a"."""
    text = _cell_text(value).lower()
    if text in ("m", "male"):
        return "M"
    if text in ("f", "female"):
        return "F"
    return NOT_AVAILABLE


def _cell_text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value).strip()
    return "" if text.lower() in ("n/a", "nan", "na") else text


def _read_table(path: Path) -> pd.DataFrame:
    separator = "\t" if path.suffix == ".tsv" else ","
    try:
        return pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise CohortLayoutError(f"{path}: unreadable table ({error})") from error


@dataclasses.dataclass(frozen=True)
class AgeColumn:
    """Where a table keeps its age and in which unit.

    Attributes:
      column: Column holding the age values.
      unit: "years", "months" or "days"; None when a per-row `age_unit` column
        states it.
    """

    column: str
    unit: str | None


def find_age_column(
    table_path: Path, columns: Sequence[str], sidecar_units: str | None = None
) -> AgeColumn | None:
    """Finds the single age column of a table and the unit it states.

    Args:
      table_path: The table, for error messages.
      columns: The table's column names.
      sidecar_units: Unit from a BIDS JSON sidecar for a plain `age` column.

    Returns:
      The age column, or None when the table has none.

    Raises:
      CohortLayoutError: Several age columns, or an unknown unit.
    """
    lowered = {column.lower(): column for column in columns}
    candidates = [
        AgeColumn(lowered[name], unit)
        for name, unit in (
            ("age", "years"),
            ("age_years", "years"),
            ("age_months", "months"),
            ("age_days", "days"),
        )
        if name in lowered
    ]
    if len(candidates) > 1:
        names = ", ".join(candidate.column for candidate in candidates)
        raise CohortLayoutError(f"{table_path}: several age columns ({names}); keep one")
    if not candidates:
        return None
    age_column = candidates[0]
    if "age_unit" in lowered:
        if age_column.column.lower() != "age":
            raise CohortLayoutError(
                f"{table_path}: both an `age_unit` column and a unit in the column name "
                f"`{age_column.column}`; keep one"
            )
        return AgeColumn(age_column.column, None)
    if sidecar_units is not None and age_column.column.lower() == "age":
        unit = _unit_name(sidecar_units)
        if unit is None:
            raise CohortLayoutError(
                f"{table_path}: age unit {sidecar_units!r} from participants.json is not one "
                f"of {sorted(AGE_UNITS_TO_YEARS)}"
            )
        return AgeColumn(age_column.column, unit)
    return age_column


def _unit_name(text: str) -> str | None:
    unit = text.strip().lower()
    aliases = {"year": "years", "y": "years", "month": "months", "day": "days", "d": "days"}
    unit = aliases.get(unit, unit)
    return unit if unit in AGE_UNITS_TO_YEARS else None


def parse_age(row: Mapping[str, str], age_column: AgeColumn | None) -> tuple[float | None, str]:
    """Converts one row's age to years.

    Args:
      row: The table row, column name -> text.
      age_column: The table's age column, or None if it has none.

    Returns:
      (age in years or None, the age as written with its column and unit).
    """
    if age_column is None:
        return None, ""
    text = _cell_text(row.get(age_column.column, ""))
    if not text:
        return None, ""
    unit = age_column.unit
    if unit is None:
        unit_text = _cell_text(row.get("age_unit", ""))
        unit = _unit_name(unit_text)
        written = f"{age_column.column}={text} {unit_text or '<no age_unit>'}"
        if unit is None:
            return None, written
    else:
        written = f"{age_column.column}={text}"
    try:
        value = float(text)
    except ValueError:
        return None, written
    return value * AGE_UNITS_TO_YEARS[unit], written


def _lower_keys(row: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in row.items()}


def _resolve(root: Path, path_text: str) -> tuple[str, str]:
    """Returns (absolute path, path relative to root when inside it)."""
    path = Path(path_text)
    absolute = path if path.is_absolute() else root / path
    absolute = Path(os.path.normpath(absolute))
    try:
        relative = absolute.relative_to(root).as_posix()
    except ValueError:
        relative = absolute.as_posix()
    return str(absolute), relative


def _require_columns(path: Path, table: pd.DataFrame, required: Sequence[str], age_hint: str) -> str:
    """Returns the table's age column, or raises naming every missing column."""
    columns = [column.lower() for column in table.columns]
    missing = [name for name in required if name not in columns]
    age_column = find_age_column(path, list(table.columns))
    if age_column is None:
        missing.append(age_hint)
    if missing:
        raise CohortLayoutError(f"{path}: missing columns {', '.join(missing)}")
    return age_column


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
    table = _read_table(manifest_path)
    age_column = _require_columns(manifest_path, table, ("subject_id", "path"), "age (or age_years, age_months, age_days)")
    lowered_age = _lowered_column(age_column)
    records = []
    for raw_row in table.to_dict("records"):
        row = _lower_keys(raw_row)
        age_years, age_text = parse_age(row, lowered_age)
        path_text = _cell_text(row["path"])
        absolute, relative = _resolve(manifest_path.parent, path_text) if path_text else ("", "")
        records.append(
            ScanRecord(
                subject_id=_cell_text(row["subject_id"]),
                session=_cell_text(row.get("session", "")),
                path=absolute,
                source_path=relative,
                age_years=age_years,
                age_text=age_text,
                sex=normalize_sex(row.get("sex", "")),
                site=_cell_text(row.get("site", "")),
                cohort=cohort,
            )
        )
    return records


_BIDS_T1W = re.compile(r"^(sub-[A-Za-z0-9]+)(?:_(ses-[A-Za-z0-9]+))?(?:_[a-z]+-[A-Za-z0-9]+)*_T1w\.nii(\.gz)?$")


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


def read_bids(root: str | os.PathLike, cohort: str = "") -> list[ScanRecord]:
    """Reads a BIDS folder's T1-weighted scans with ages from its tables.

    Ages come from `sub-X/sub-X_sessions.tsv` for the session when it lists one,
    else from `participants.tsv`. BIDS states ages in years; a
    `participants.json` `age.Units` entry or a unit-named column overrides that.
    A participant listed without any T1w file becomes a record with no path.

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
    participants = _read_table(participants_path)
    if "participant_id" not in [column.lower() for column in participants.columns]:
        raise CohortLayoutError(f"{participants_path}: missing column participant_id")
    sidecar_units = _bids_age_units(root)
    participant_age = find_age_column(participants_path, list(participants.columns), sidecar_units)
    rows_by_subject = {}
    for raw_row in participants.to_dict("records"):
        row = _lower_keys(raw_row)
        rows_by_subject[_cell_text(row["participant_id"])] = row

    session_rows: dict[tuple[str, str], tuple[dict[str, str], AgeColumn | None]] = {}
    for sessions_path in sorted(root.glob("sub-*/sub-*_sessions.tsv")):
        table = _read_table(sessions_path)
        age_column = find_age_column(sessions_path, list(table.columns), sidecar_units)
        subject = sessions_path.parent.name
        for raw_row in table.to_dict("records"):
            row = _lower_keys(raw_row)
            session_rows[(subject, _cell_text(row.get("session_id", "")))] = (row, age_column)

    records = []
    subjects_with_scans = set()
    for scan_path in sorted(root.glob("sub-*/**/anat/*_T1w.nii*")):
        match = _BIDS_T1W.match(scan_path.name)
        if match is None:
            continue
        subject, session = match.group(1), match.group(2) or ""
        subjects_with_scans.add(subject)
        participant = rows_by_subject.get(subject, {})
        age_years, age_text = None, ""
        if (subject, session) in session_rows:
            session_row, session_age = session_rows[(subject, session)]
            age_years, age_text = parse_age(session_row, _lowered_column(session_age))
        if age_years is None and not age_text:
            age_years, age_text = parse_age(participant, _lowered_column(participant_age))
        records.append(
            ScanRecord(
                subject_id=subject,
                session=session,
                path=str(scan_path),
                source_path=scan_path.relative_to(root).as_posix(),
                age_years=age_years,
                age_text=age_text,
                sex=normalize_sex(participant.get("sex", "")),
                site=_cell_text(participant.get("site", "")),
                cohort=cohort,
            )
        )
    for subject, participant in rows_by_subject.items():
        if subject in subjects_with_scans:
            continue
        age_years, age_text = parse_age(participant, _lowered_column(participant_age))
        records.append(
            ScanRecord(
                subject_id=subject,
                session="",
                path="",
                source_path="",
                age_years=age_years,
                age_text=age_text,
                sex=normalize_sex(participant.get("sex", "")),
                site=_cell_text(participant.get("site", "")),
                cohort=cohort,
            )
        )
    return records


def _lowered_column(age_column: AgeColumn | None) -> AgeColumn | None:
    if age_column is None:
        return None
    return AgeColumn(age_column.column.lower(), age_column.unit)


def _is_scan(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and any(name.endswith(suffix) for suffix in SCAN_SUFFIXES)


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
    table = _read_table(demographics_path)
    age_column = _require_columns(demographics_path, table, ("subject_id", "visit"), "age_days (or age_months, age_years, age)")

    scans_by_visit: dict[tuple[str, str], list[Path]] = {}
    visit_pattern = re.compile(r"(?:^|[_\-.])([A-Za-z0-9]+)_([Vv][A-Za-z0-9]+)(?=[_\-.])")
    for scan_path in sorted(root.rglob("*")):
        if not _is_scan(scan_path) or scan_path.name.lower().endswith(".hdr"):
            continue
        match = visit_pattern.search(scan_path.name)
        if match is not None:
            scans_by_visit.setdefault((match.group(1), match.group(2).upper()), []).append(scan_path)

    records = []
    listed = set()
    lowered_age = _lowered_column(age_column)
    for raw_row in table.to_dict("records"):
        row = _lower_keys(raw_row)
        subject, visit = _cell_text(row["subject_id"]), _cell_text(row["visit"]).upper()
        listed.add((subject, visit))
        age_years, age_text = parse_age(row, lowered_age)
        scan_paths = scans_by_visit.get((subject, visit), [None])
        for scan_path in scan_paths:
            records.append(
                ScanRecord(
                    subject_id=subject,
                    session=visit,
                    path=str(scan_path) if scan_path else "",
                    source_path=scan_path.relative_to(root).as_posix() if scan_path else "",
                    age_years=age_years,
                    age_text=age_text,
                    sex=normalize_sex(row.get("sex", "")),
                    site=_cell_text(row.get("site", "")),
                    cohort=cohort,
                )
            )
    for (subject, visit), scan_paths in sorted(scans_by_visit.items()):
        if (subject, visit) in listed:
            continue
        for scan_path in scan_paths:
            records.append(
                ScanRecord(
                    subject_id=subject,
                    session=visit,
                    path=str(scan_path),
                    source_path=scan_path.relative_to(root).as_posix(),
                    age_years=None,
                    age_text="",
                    cohort=cohort,
                )
            )
    return sorted(records, key=lambda record: (record.subject_id, record.session, record.path))


def detect_layout(root: str | os.PathLike) -> tuple[str, Path]:
    """Finds which supported layout a folder holds.

    Args:
      root: The cohort folder (e.g. the TFDS manual_dir).

    Returns:
      (layout name, the file that identifies it): "manifest" with the manifest,
      "bids" with participants.tsv, "release" with the demographics table.

    Raises:
      CohortLayoutError: No layout found, or more than one.
    """
    root = Path(root)
    if not root.is_dir():
        raise CohortLayoutError(f"{root}: cohort folder does not exist")
    found = []
    found += [("manifest", root / name) for name in MANIFEST_NAMES if (root / name).exists()]
    if any((root / name).exists() for name in BIDS_MARKERS):
        found.append(("bids", root / "participants.tsv"))
    found += [
        ("release", root / name) for name in DEMOGRAPHICS_NAMES if (root / name).exists()
    ]
    if len(found) == 1:
        return found[0]
    looked_for = (
        f"{' or '.join(MANIFEST_NAMES)} (manifest), participants.tsv / "
        f"dataset_description.json (BIDS), {' or '.join(DEMOGRAPHICS_NAMES)} (release: scans + demographics table)"
    )
    if not found:
        raise CohortLayoutError(f"{root}: no cohort layout found; looked for {looked_for}")
    names = ", ".join(str(path.name) for _, path in found)
    raise CohortLayoutError(f"{root}: several cohort layouts found ({names}); keep exactly one")


def read_cohort(root: str | os.PathLike, cohort: str = "") -> list[ScanRecord]:
    """Reads whichever supported layout `root` holds.

    Args:
      root: The cohort folder.
      cohort: Cohort name stored in every record.

    Returns:
      The cohort's records.

    Raises:
      CohortLayoutError: See `detect_layout` and the readers.
    """
    layout, marker = detect_layout(root)
    if layout == "manifest":
        return read_manifest(marker, cohort=cohort)
    if layout == "bids":
        return read_bids(root, cohort=cohort)
    return read_release(marker, cohort=cohort)
