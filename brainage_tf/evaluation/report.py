"""Markdown tables of evaluation metrics in the paper's format, and the `report.md` that holds them.

`rows` maps a model (or model-and-set) name to the dict of `metrics.evaluation_metrics`,
optionally with `"bias_corrected"` (the same keys on corrected predictions) and
`"conformal"` (`level`, `coverage`, `mean_width`) added.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

REPORT_NAME = "report.md"
EMPTY = "–"  # en dash, as the paper's tables mark a missing value


def paper_table(rows: Mapping[str, Mapping], key: str | None = None) -> str:
    """MAE per age group and overall, one row per model, as the paper's Tables 1-3.

    The columns are the age-group labels in order of first appearance, then
    "Average": the overall per-subject MAE (`mae`), not the mean of the group MAEs.
    A closing "n" row gives the subjects per group and in all; where models differ
    it lists each model's count in row order, joined by "/". Rows without "n" (published
    figures quoted beside ours) add no count.

    Args:
      rows: Model name -> its metrics dict.
      key: Read each row's metrics from this nested key instead (e.g. "bias_corrected");
        a row without it shows "–" throughout.

    Returns:
      The Markdown table, one line per row, ending with a newline.
    """
    metrics = {name: row.get(key) if key else row for name, row in rows.items()}
    labels = list(dict.fromkeys(g["label"] for m in metrics.values() if m for g in m["age_groups"]))
    lines = [
        _line(["Method", *labels, "Average"]),
        _line(["---", *["---:"] * (len(labels) + 1)]),
    ]
    counts: list[list[str]] = [[] for _ in range(len(labels) + 1)]
    for name, m in metrics.items():
        groups = {g["label"]: g for g in m["age_groups"]} if m else {}
        maes = [groups.get(label, {}).get("mae") for label in labels]
        lines.append(_line([_escape(name), *map(_number, maes), _number(m["mae"] if m else None)]))
        # A row without counts (a paper's published MAEs) adds nothing to the n row.
        for column, label in enumerate(labels):
            if groups.get(label, {}).get("n") is not None:
                counts[column].append(str(groups[label]["n"]))
        if m and m.get("n") is not None:
            counts[-1].append(str(m["n"]))
    # One count where all models agree; otherwise each model's, so none is hidden.
    lines.append(_line(["n", *("/".join(c) if len(set(c)) > 1 else (c[0] if c else EMPTY) for c in counts)]))
    return "\n".join(lines) + "\n"


def summary_table(rows: Mapping[str, Mapping]) -> str:
    """Overall metrics per model: n, non-finite predictions, MAE, RMSE, r, R², mean gap.

    A "corrected MAE" column appears when any row has `"bias_corrected"`, and
    conformal coverage (with its target level) and mean interval width when any
    row has `"conformal"`; rows without them show "–".

    Args:
      rows: Model name -> its metrics dict.

    Returns:
      The Markdown table, ending with a newline.
    """
    header = ["Method", "n", "non-finite", "MAE (y)", "RMSE (y)", "Pearson r", "R²", "mean gap (y)"]
    corrected = any(row.get("bias_corrected") for row in rows.values())
    conformal = any(row.get("conformal") for row in rows.values())
    header += ["corrected MAE (y)"] * corrected + [
        "conformal coverage (level)",
        "interval width (y)",
    ] * conformal
    lines = [_line(header), _line(["---", *["---:"] * (len(header) - 1)])]
    for name, row in rows.items():
        cells = [
            _escape(name),
            str(row["n"]),
            str(row["n_nonfinite"]),
            _number(row["mae"]),
            _number(row["rmse"]),
            _number(row.get("pearson_r"), 3),
            _number(row.get("r2"), 3),
            _number(row["mean_gap"], signed=True),
        ]
        if corrected:
            cells.append(_number((row.get("bias_corrected") or {}).get("mae")))
        if conformal:
            interval = row.get("conformal") or {}
            coverage = _number(interval.get("coverage"))
            cells.append(f"{coverage} ({_number(interval['level'])})" if interval else EMPTY)
            cells.append(_number(interval.get("mean_width")))
        lines.append(_line(cells))
    return "\n".join(lines) + "\n"


# (header, keys into a metrics dict, decimals; None: a count) of the ground-truth and longitudinal tables.
TRUTH_COLUMNS = (
    ("n", ("truth", "n"), None),
    ("MAE (y)", ("truth", "mae"), 2),
    ("oracle floor (y)", ("truth", "oracle_floor"), 2),
    ("MAE to developmental age (y)", ("truth", "mae_to_developmental_age"), 2),
    ("r(gap, true gap)", ("truth", "gap", "pearson_r"), 3),
    ("r(corrected gap, true gap)", ("truth", "corrected_gap", "pearson_r"), 3),
    ("truth share of gap", ("truth", "gap", "truth_share"), 3),
    ("truth share of corrected gap", ("truth", "corrected_gap", "truth_share"), 3),
)
LONGITUDINAL_COLUMNS = (
    ("subjects", ("longitudinal", "gap", "subjects"), None),
    ("visit pairs", ("longitudinal", "change", "pairs"), None),
    ("MAE of change (y)", ("longitudinal", "change", "mae"), 2),
    ("slope of change", ("longitudinal", "change", "slope"), 2),
    ("within-subject SD of gap (y)", ("longitudinal", "gap", "within_subject_sd"), 2),
    ("ICC(1) of gap", ("longitudinal", "gap", "icc"), 3),
    ("within-subject SD of corrected gap (y)", ("longitudinal", "corrected_gap", "within_subject_sd"), 2),
    ("ICC(1) of corrected gap", ("longitudinal", "corrected_gap", "icc"), 3),
)


def nested(row: Mapping, keys: Sequence[str]):
    """`row[keys[0]][keys[1]]...`, or None where a level is missing or None."""
    for key in keys:
        row = row.get(key) if isinstance(row, Mapping) else None
    return row


def column_table(rows: Mapping[str, Mapping], columns: Sequence[tuple]) -> str:
    """A Markdown table of `columns` (TRUTH_COLUMNS, LONGITUDINAL_COLUMNS), one line per model having them.

    With TRUTH_COLUMNS each model's MAE sits beside the oracle floor, the MAE a perfect predictor of
    the developmental age would have against chronological age (`brainage_tf.evaluation.gap_truth`).
    """
    lines = [_line(["Method", *(c[0] for c in columns)]), _line(["---", *["---:"] * len(columns)])]
    for name, row in rows.items():
        if not row.get(columns[0][1][0]):
            continue
        values = [(nested(row, keys), digits) for _, keys, digits in columns]
        cells = [EMPTY if v is None else str(v) if d is None else _number(v, d) for v, d in values]
        lines.append(_line([_escape(name), *cells]))
    return "\n".join(lines) + "\n"


TRUTH_HEADING = "## The gap against the true developmental gap"
LONGITUDINAL_HEADING = "## Longitudinal: change between visits, stability of the gap"
TRUTH_NOTE = (
    "Ground truth (synthetic cohort): the true gap is developmental age - age = age x (tempo - 1). "
    "The oracle floor is the MAE against chronological age of a perfect predictor of the developmental "
    "age; truth share is r², the part of the gap's variance a linear function of the true gap explains."
)
LONGITUDINAL_NOTE = (
    "Longitudinal: subjects with two or more scans; change between consecutive visits (slope of "
    "predicted on true change, 1 is ideal); ICC(1), one-way random effects with the n0 adjustment for "
    "unequal visit counts (docs/evaluation.md)."
)


def write_report(
    path: str | os.PathLike,
    title: str,
    rows: Mapping[str, Mapping],
    plots: Mapping[str, Path],
    notes: Sequence[str] = (),
) -> Path:
    """Writes the Markdown report: the paper-format tables, the summary, notes and figures.

    Args:
      path: The report file; an existing folder gets `report.md` inside it.
      title: The report's first heading.
      rows: Model name -> its metrics dict.
      plots: Caption -> PNG file; each is linked relative to the report's folder.
      notes: Sentences shown as a bullet list, e.g. the data split or the bias-correction method.

    Returns:
      The path of the written report.
    """
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_NAME
    sections = [f"# {title}", "## MAE per age group (years)", paper_table(rows)]
    if any(row.get("bias_corrected") for row in rows.values()):
        sections += [
            "## MAE per age group after bias correction (years)",
            paper_table(rows, "bias_corrected"),
        ]
    sections += ["## Summary", summary_table(rows)]
    if any(row.get("truth") for row in rows.values()):
        sections += [TRUTH_HEADING, column_table(rows, TRUTH_COLUMNS)]
        sections.append(TRUTH_NOTE)
    if any(row.get("longitudinal") for row in rows.values()):
        sections += [LONGITUDINAL_HEADING, column_table(rows, LONGITUDINAL_COLUMNS)]
        sections.append(LONGITUDINAL_NOTE)
    if notes:
        sections += ["## Notes", "\n".join(f"- {note}" for note in notes)]
    if plots:
        sections.append("## Figures")
        for caption, plot in plots.items():
            # Relative to the report's folder, so the report and its figures can move together.
            link = urllib.parse.quote(Path(os.path.relpath(plot, path.parent)).as_posix())
            sections.append(f"![{caption}]({link})")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(section.rstrip("\n") for section in sections) + "\n", encoding="utf-8")
    return path


def _number(value: float | None, digits: int = 2, signed: bool = False) -> str:
    """`value` to `digits` decimals, or "–" when it is missing or not finite."""
    if value is None or not math.isfinite(value):
        return EMPTY
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _escape(name: str) -> str:
    """A model name safe inside a table cell."""
    return name.replace("|", "\\|")


def _line(cells: Sequence[str]) -> str:
    """One Markdown table line."""
    return "| " + " | ".join(cells) + " |"
