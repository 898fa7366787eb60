"""The checks a build makes on the cohort as a whole, before any scan is preprocessed.

The Beam stage skips, row by row, what it cannot use. Some mistakes belong to the whole
cohort, and skipping rows would hide them or end in a traceback after hours of work:

* `unit_mistake`: ages written in another unit than the table states (months in a column
  read as years), so that most of them would be skipped, or worse, written as wrong labels;
* `split_problem`: a split that would get fewer subjects than it needs (`MIN_SPLIT_SUBJECTS`);
* `unreadable_split`: a split none of whose scans opens.

Each returns a one-line reason or None. Only the first opens any file, and only headers:
it stops at the first scan of a split that opens, so a good cohort costs one header per split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from brainage_tf.errors import ScanError, one_line
from brainage_tf.ingest.ages import AGE_UNITS_TO_YEARS, age_problem
from brainage_tf.ingest.records import ScanRecord
from brainage_tf.ingest.splits import MIN_SPLIT_SUBJECTS

# The unit rule (docs/ingest.md, "Ages in another unit"): at least UNIT_MIN_ABOVE ages, and at
# least UNIT_MIN_SHARE_ABOVE of a cohort's ages in one stated unit, lie above the cohort's range,
# and at least UNIT_MIN_FIT of all of them fall inside the range when read in a smaller unit.
UNIT_MIN_ABOVE = 3
UNIT_MIN_SHARE_ABOVE = 0.2
UNIT_MIN_FIT = 0.8
# Offending values the message shows.
_SHOWN_VALUES = 5

AgeRanges = Mapping[str, tuple[float, float]]


def _usable(record: ScanRecord, age_ranges: AgeRanges) -> bool:
    """Whether the record has a scan path and an age inside its cohort's range."""
    return bool(record.path) and age_problem(record, age_ranges.get(record.cohort)) is None


def unit_mistake(records: Sequence[ScanRecord], age_ranges: AgeRanges) -> str | None:
    """Why a cohort's ages look written in another unit than their table states, or None.

    The ages of one cohort stated in one unit are taken together (one table, or every
    sessions table of a BIDS folder). The rule fires when at least `UNIT_MIN_ABOVE` of them,
    and at least `UNIT_MIN_SHARE_ABOVE` of them, lie above the cohort's oldest age, and at
    least `UNIT_MIN_FIT` of all of them fall inside the range read in a smaller unit (months,
    then days, for ages stated in years). A cohort with no age above its range never fires.

    Args:
      records: The cohort's records.
      age_ranges: Cohort name -> (youngest, oldest) age in years.

    Returns:
      One line naming the table, the column, a few offending values and how to state the unit.
    """
    groups: dict[tuple[str, str], list[ScanRecord]] = {}
    for record in records:
        age = record.age_years
        if age is None or not math.isfinite(age) or not record.age_unit or record.cohort not in age_ranges:
            continue
        groups.setdefault((record.cohort, record.age_unit), []).append(record)
    for (cohort, unit), group in sorted(groups.items()):
        low, high = age_ranges[cohort]
        above = [record for record in group if record.age_years > high]
        if len(above) < max(UNIT_MIN_ABOVE, UNIT_MIN_SHARE_ABOVE * len(group)):
            continue
        smaller = [other for other, years in AGE_UNITS_TO_YEARS.items() if years < AGE_UNITS_TO_YEARS[unit]]
        for other in sorted(smaller, key=AGE_UNITS_TO_YEARS.get, reverse=True):
            factor = AGE_UNITS_TO_YEARS[other] / AGE_UNITS_TO_YEARS[unit]
            fit = sum(low <= record.age_years * factor <= high for record in group) / len(group)
            if fit >= UNIT_MIN_FIT:
                return _unit_message(cohort, unit, other, group, above, (low, high), fit)
    return None


def _unit_message(
    cohort: str,
    unit: str,
    other: str,
    group: list[ScanRecord],
    above: list[ScanRecord],
    age_range: tuple[float, float],
    fit: float,
) -> str:
    tables = sorted({record.age_table for record in group})
    where = tables[0] + (f" and {len(tables) - 1} other tables" if len(tables) > 1 else "")
    column = above[0].age_text.partition("=")[0]
    values = ", ".join(record.age_text.partition("=")[2] for record in above[:_SHOWN_VALUES])
    more = ", ..." if len(above) > _SHOWN_VALUES else ""
    return (
        f"{where}: column {column}: {len(above)} of {len(group)} ages read as {unit} are above the "
        f"{cohort} cohort's {age_range[0]:g}-{age_range[1]:g} years ({values}{more}), but {fit:.0%} of them "
        f"fit it read as {other}; state the unit: name the column age_{other} or add an age_unit column, "
        f'or for BIDS write participants.json {{"age": {{"Units": "{other}"}}}} '
        "(if the cohort really is older, give its range as age_range in a JSON config)"
    )


def split_problem(
    split_records: Sequence[tuple[str, ScanRecord]], split_names: Sequence[str], age_ranges: AgeRanges
) -> str | None:
    """Why a split would get fewer subjects than it needs, or None.

    Counted from the subject list alone: subjects with a scan path and an age inside their
    cohort's range, per assigned split. Minimums: `MIN_SPLIT_SUBJECTS` (1 for another split).

    Args:
      split_records: (split, record) pairs as the builder assigned them.
      split_names: Every split the builder declares.
      age_ranges: Cohort name -> (youngest, oldest) age in years.

    Returns:
      One line naming each short split, its subject count and what it needs.
    """
    subjects: dict[str, set[tuple[str, str]]] = {split: set() for split in split_names}
    for split, record in split_records:
        if split in subjects and _usable(record, age_ranges):
            subjects[split].add((record.cohort, record.subject_id))
    short = []
    for split in split_names:
        needed, purpose = MIN_SPLIT_SUBJECTS.get(split, (1, "it needs a subject"))
        if len(subjects[split]) < needed:
            short.append(f"split {split} would get {len(subjects[split])} (needs {needed}: {purpose})")
    if not short:
        return None
    usable = len(set().union(*subjects.values()))
    counts = ", ".join(f"{split} {len(subjects[split])}" for split in split_names)
    return f"subjects with a scan and an age in the cohort's range: {usable} ({counts}); {'; '.join(short)}"


def unreadable_split(
    split_records: Sequence[tuple[str, ScanRecord]],
    split_names: Sequence[str],
    age_ranges: AgeRanges,
    max_voxels: int,
) -> str | None:
    """Why a split has no scan that opens, or None: headers only, stopping at the first that opens.

    Args:
      split_records: (split, record) pairs as the builder assigned them.
      split_names: Every split the builder declares.
      age_ranges: Cohort name -> (youngest, oldest) age in years.
      max_voxels: The config's voxel limit, as the Beam stage applies it.

    Returns:
      One line naming the split, its scan count and the first scan's problem.
    """
    from brainage_tf.scan_file import open_scan  # nibabel: only when a build checks its scans

    for split in split_names:
        candidates = [
            record for name, record in split_records if name == split and _usable(record, age_ranges)
        ]
        first_error = None
        for record in candidates:
            try:
                open_scan(record.path, max_voxels)
            except ScanError as error:
                first_error = first_error or error
                continue
            break
        else:
            if first_error is not None:
                return (
                    f"split {split}: none of its {len(candidates)} scans opens "
                    f"(first: {one_line(first_error)}); every one would be skipped"
                )
    return None
