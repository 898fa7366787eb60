"""`ScanRecord`, one listed scan, and the table helpers every cohort reader shares.

The readers (`manifest`, `bids`, `release`) turn their rows into records with
`record_from_row`. Readers never drop a row: a missing age or missing file is
kept in the record and becomes a counted skip in the Beam stage.

Only the standard library and pandas are used here, so the readers run in the
main process before the pipeline starts, on any machine.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from brainage_tf.errors import CohortLayoutError

if TYPE_CHECKING:  # ages imports this module
    from brainage_tf.ingest.ages import ParsedAge

NOT_AVAILABLE = "n/a"


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
      age_table: The table the age was read from, "" when none; the unit check names it.
      age_unit: The unit that table states for the age ("years", "months", "days"), "" when none.
      tempo: The subject's developmental tempo, None unless the cohort lists it (synthetic ground truth).
      developmental_age: The scan's developmental age in years (age x tempo), None unless listed.
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
    age_table: str = ""
    age_unit: str = ""
    tempo: float | None = None
    developmental_age: float | None = None

    @property
    def key(self) -> str:
        """Unique, machine-independent example key: cohort/subject/session."""
        return f"{self.cohort}/{self.subject_id}/{self.session}"


def cell_text(value: object) -> str:
    """A table cell as stripped text; empty, NaN and "n/a"/"na"/"nan" give ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value).strip()
    return "" if text.lower() in ("n/a", "nan", "na") else text


def normalize_sex(value: object) -> str:
    """Maps M/male/F/female (any case) to "M"/"F" and anything else to "n/a"."""
    text = cell_text(value).lower()
    if text in ("m", "male"):
        return "M"
    if text in ("f", "female"):
        return "F"
    return NOT_AVAILABLE


def read_table(path: Path) -> pd.DataFrame:
    """Reads a .tsv (tabs) or other (commas) table with every cell as text.

    Raises:
      CohortLayoutError: The file cannot be read or parsed.
    """
    separator = "\t" if path.suffix == ".tsv" else ","
    try:
        return pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise CohortLayoutError(f"{path}: unreadable table ({error})") from error


def table_rows(table: pd.DataFrame) -> list[dict[str, str]]:
    """The table's rows with lower-case column names, which the readers look up."""
    return [{key.lower(): value for key, value in row.items()} for row in table.to_dict("records")]


def resolve_path(root: Path, path_text: str) -> tuple[str, str]:
    """Returns (absolute path, path relative to root when inside it), or ("", "") for no path."""
    if not path_text:
        return "", ""
    path = Path(path_text)
    absolute = Path(os.path.normpath(path if path.is_absolute() else root / path))
    try:
        relative = absolute.relative_to(root).as_posix()
    except ValueError:
        relative = absolute.as_posix()
    return str(absolute), relative


def record_from_row(
    row: Mapping[str, str],
    age: ParsedAge,
    *,
    subject_id: str,
    session: str,
    cohort: str,
    root: Path,
    path: str = "",
) -> ScanRecord:
    """Builds the record of one scan (or of one scan-less row).

    Args:
      row: The table row holding `sex` and `site` (lower-case keys), {} for none.
      age: The row's age, see `ages.parse_age`.
      subject_id: The subject.
      session: The session or visit, "" when cross-sectional.
      cohort: Cohort name.
      root: Cohort folder that `source_path` is relative to.
      path: The scan path as listed (relative to `root` or absolute), "" for none.

    Returns:
      The record.
    """
    absolute, relative = resolve_path(root, path)
    return ScanRecord(
        subject_id=subject_id,
        session=session,
        path=absolute,
        source_path=relative,
        age_years=age.years,
        age_text=age.written,
        sex=normalize_sex(row.get("sex", "")),
        site=cell_text(row.get("site", "")),
        cohort=cohort,
        age_table=age.table,
        age_unit=age.unit,
    )
