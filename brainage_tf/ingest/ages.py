"""Age columns, units and the plausible age range.

The age unit is always stated, never guessed: the age column's name carries it
(``age`` and ``age_years`` are years, ``age_months``, ``age_days``), or an
``age_unit`` column states it per row, or for BIDS the ``participants.json``
sidecar's ``Units``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from brainage_tf.errors import CohortLayoutError
from brainage_tf.ingest.records import ScanRecord, cell_text

AGE_UNITS_TO_YEARS: Mapping[str, float] = {
    "years": 1.0,
    "months": 1.0 / 12.0,
    "days": 1.0 / 365.25,
}
MIN_PLAUSIBLE_AGE_YEARS = -1.0
MAX_PLAUSIBLE_AGE_YEARS = 100.0
# Reason code of an age a human can have but the cohort does not (a 30-year-old in a 0-22 y cohort).
OUTSIDE_AGE_RANGE = "outside_age_range"
_UNIT_ALIASES = {"year": "years", "y": "years", "month": "months", "day": "days", "d": "days"}
_UNIT_COLUMNS = (("age", "years"), ("age_years", "years"), ("age_months", "months"), ("age_days", "days"))


@dataclasses.dataclass(frozen=True)
class AgeColumn:
    """Where a table keeps its age and in which unit.

    Attributes:
      column: Column holding the age values, as the table spells it.
      unit: "years", "months" or "days"; None when a per-row `age_unit` column
        states it.
    """

    column: str
    unit: str | None
    table: str = ""


@dataclasses.dataclass(frozen=True)
class ParsedAge:
    """One row's age, as `parse_age` reads it.

    Attributes:
      years: The age in years, None when missing or unparseable.
      written: The age as written with its column and unit, e.g. "age_months=14", "" for none.
      table: The table it was read from, so a check on a whole column can name the file.
      unit: The unit the table states for it ("years", "months", "days"), "" when none.
    """

    years: float | None
    written: str
    table: str = ""
    unit: str = ""


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
    candidates = [AgeColumn(lowered[name], unit) for name, unit in _UNIT_COLUMNS if name in lowered]
    if len(candidates) > 1:
        names = ", ".join(candidate.column for candidate in candidates)
        raise CohortLayoutError(f"{table_path}: several age columns ({names}); keep one")
    if not candidates:
        return None
    age_column = dataclasses.replace(candidates[0], table=str(table_path))
    if "age_unit" in lowered:
        if age_column.column.lower() != "age":
            raise CohortLayoutError(
                f"{table_path}: both an `age_unit` column and a unit in the column name "
                f"`{age_column.column}`; keep one"
            )
        return dataclasses.replace(age_column, unit=None)
    if sidecar_units is not None and age_column.column.lower() == "age":
        unit = _unit_name(sidecar_units)
        if unit is None:
            raise CohortLayoutError(
                f"{table_path}: age unit {sidecar_units!r} from participants.json is not one "
                f"of {sorted(AGE_UNITS_TO_YEARS)}"
            )
        return dataclasses.replace(age_column, unit=unit)
    return age_column


def require_columns(
    table_path: Path, columns: Sequence[str], required: Sequence[str], age_hint: str
) -> AgeColumn:
    """Returns the table's age column after checking that it has every required column.

    Args:
      table_path: The table, for error messages.
      columns: The table's column names.
      required: Lower-case names of the other columns the table must have.
      age_hint: How the error names the missing age column.

    Raises:
      CohortLayoutError: Naming every missing column, or see `find_age_column`.
    """
    present = {column.lower() for column in columns}
    missing = [name for name in required if name not in present]
    age_column = find_age_column(table_path, columns)
    if age_column is None:
        missing.append(age_hint)
    if missing:
        raise CohortLayoutError(f"{table_path}: missing columns {', '.join(missing)}")
    return age_column


def _unit_name(text: str) -> str | None:
    unit = text.strip().lower()
    unit = _UNIT_ALIASES.get(unit, unit)
    return unit if unit in AGE_UNITS_TO_YEARS else None


def parse_age(row: Mapping[str, str], age_column: AgeColumn | None) -> ParsedAge:
    """Converts one row's age to years.

    Args:
      row: The table row, lower-case column name -> text.
      age_column: The table's age column, or None if it has none.

    Returns:
      The age in years (or None), as written with its column and unit, its table and stated unit.
    """
    if age_column is None:
        return ParsedAge(None, "")
    text = cell_text(row.get(age_column.column.lower(), ""))
    if not text:
        return ParsedAge(None, "", age_column.table)
    unit = age_column.unit
    written = f"{age_column.column}={text}"
    if unit is None:
        unit_text = cell_text(row.get("age_unit", ""))
        unit = _unit_name(unit_text)
        written = f"{written} {unit_text or '<no age_unit>'}"
        if unit is None:
            return ParsedAge(None, written, age_column.table)
    try:
        value = float(text)
    except ValueError:
        return ParsedAge(None, written, age_column.table, unit)
    return ParsedAge(value * AGE_UNITS_TO_YEARS[unit], written, age_column.table, unit)


def age_problem(record: ScanRecord, age_range: tuple[float, float] | None = None) -> tuple[str, str] | None:
    """Returns why the record's age is unusable, or None when it is fine.

    Ages outside -1 to 100 years are implausible, and negative ages are rejected
    as well, so the accepted range is 0 to 100 years inclusive. A cohort's own
    range is narrower: an age a child can have but the cohort does not is the
    likelier sign of a mistake (a unit, a typo), and a model must not learn from it.

    Args:
      record: The record to check.
      age_range: The cohort's (youngest, oldest) age in years, both included; None: no cohort range.

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
    if age_range is not None and not age_range[0] <= age <= age_range[1]:
        cohort = f"{record.cohort} cohort" if record.cohort else "cohort"
        return OUTSIDE_AGE_RANGE, (
            f"age {age:.3f} years ({record.age_text}) outside the {cohort}'s "
            f"{age_range[0]:g}-{age_range[1]:g} years"
        )
    return None
