"""Several runs on one evaluated set: the paper's table side by side, CS curves and paired tests.

`compare()` evaluates each run with `run_evaluation.evaluate` (which also writes
the run's own eval folder), matches the runs' predictions by (subject_id,
session), and writes into one folder `report.md`, `cs_curves.png` and
`metrics.json`. Every table row, curve and test uses the subjects every run
evaluated; each pair of models gets a Wilcoxon signed-rank test (Wilcoxon 1945)
of their absolute errors on the subjects both predicted finitely.

The pairing and the test are pure numpy/pandas/scipy; TensorFlow is imported
only when a run is evaluated.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from brainage_tf.errors import UsageError
from brainage_tf.evaluation import metrics, plots, report

KEY = ["subject_id", "session"]


@dataclasses.dataclass(frozen=True)
class Member:
    """One run evaluated on the shared set.

    Attributes:
        label: Its row label (model name, plus the run folder's name when models repeat).
        run_dir: The run directory.
        eval_dir: Its own evaluation folder.
        predictions: subject_id, session, age, predicted_age of every evaluated scan.
        metrics: Its own metrics.json (all the subjects it evaluated).
    """

    label: str
    run_dir: Path
    eval_dir: Path
    predictions: pd.DataFrame
    metrics: dict


def model_labels(run_dirs: Sequence[Path], models: Sequence[str]) -> list[str]:
    """Row labels: the model name, plus the run folder's name (or path) when two runs share a model."""
    repeated = Counter(models)
    labels = [
        m if repeated[m] == 1 else f"{m} ({Path(r).name})" for r, m in zip(run_dirs, models, strict=True)
    ]
    if len(set(labels)) < len(labels):  # same model, same folder name under different parents
        labels = [m if repeated[m] == 1 else f"{m} ({r})" for r, m in zip(run_dirs, models, strict=True)]
    return labels


def read_predictions(path: Path) -> pd.DataFrame:
    """A predictions CSV with the key columns kept as text ("001" stays "001", an empty session "")."""
    return pd.read_csv(
        path,
        dtype={"subject_id": str, "session": str},
        keep_default_na=False,
        na_values={"age": [""], "predicted_age": [""]},
    )


def pair_by_subject(tables: Mapping[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Matches several models' predictions by (subject_id, session), keeping the subjects all have.

    Args:
        tables: Model label -> DataFrame with subject_id, session, age, predicted_age.

    Returns:
        (paired, dropped): `paired` has subject_id, session, age and one column of
        predicted ages per label, one row per subject every table holds, sorted by
        key; `dropped` counts, per label, its rows that are not in every table.

    Raises:
        ValueError: A key repeats within a table, or a matched subject's age differs between tables.
    """
    keyed = {}
    for label, table in tables.items():
        keys = pd.MultiIndex.from_frame(table[KEY].fillna("").astype(str))
        if keys.has_duplicates:
            first = keys[keys.duplicated()][0]
            raise ValueError(f"cannot match subjects of {label}: (subject_id, session) {first} repeats")
        keyed[label] = table.set_axis(keys)
    common = None
    for frame in keyed.values():
        common = frame.index if common is None else common.intersection(frame.index, sort=False)
    common = common.sort_values()
    first = next(iter(keyed.values()))
    paired = common.to_frame(index=False)
    paired["age"] = first.loc[common, "age"].to_numpy(float)
    for label, frame in keyed.items():
        ages = frame.loc[common, "age"].to_numpy(float)
        if not np.allclose(ages, paired["age"], atol=1e-4):
            raise ValueError(f"{label} gives other ages than {next(iter(keyed))} for the same subjects")
        paired[label] = frame.loc[common, "predicted_age"].to_numpy(float)
    return paired, {label: len(frame) - len(common) for label, frame in keyed.items()}


def paired_wilcoxon(errors_a: np.ndarray, errors_b: np.ndarray) -> dict:
    """Two-sided Wilcoxon signed-rank test of two models' absolute errors on the same subjects.

    Subjects where either error is not finite are left out; zero differences are
    dropped by the test (scipy's "wilcox" method) but counted in `n`.

    Returns:
        {"n", "median_difference" (median of a - b; negative: A has smaller errors),
        "statistic", "p_value"}; the last two are None when no difference is non-zero.
    """
    a, b = np.asarray(errors_a, float), np.asarray(errors_b, float)
    finite = np.isfinite(a) & np.isfinite(b)
    difference = a[finite] - b[finite]
    result = {"n": int(finite.sum()), "median_difference": None, "statistic": None, "p_value": None}
    if difference.size:
        result["median_difference"] = float(np.median(difference))
    if np.any(difference != 0):
        test = stats.wilcoxon(a[finite], b[finite])
        result["statistic"], result["p_value"] = float(test.statistic), float(test.pvalue)
    return result


def wilcoxon_table(tests: Sequence[dict]) -> str:
    """The paired tests as a Markdown table; each dict has "a", "b" and `paired_wilcoxon`'s keys."""
    lines = [
        "| A | B | n | median AE difference A − B (y) | W | p | smaller errors |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for test in tests:
        median = test["median_difference"]
        smaller = report.EMPTY if not median else (test["a"] if median < 0 else test["b"])
        cells = [
            test["a"],
            test["b"],
            str(test["n"]),
            number(median, "+.3f"),
            number(test["statistic"], ".1f"),
            number(test["p_value"], ".3g"),
            smaller,
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate_members(run_dirs: Sequence[Path], template, log: Callable[[str], None] = print) -> list[Member]:
    """Evaluates every run with `template` (an EvaluationRequest) on one dataset and split.

    Raises:
        UsageError: A directory that is not a run, a run given twice, runs of different
            datasets without --dataset, or any error of `run_evaluation.evaluate`.
    """
    from brainage_tf.evaluation import run_evaluation
    from brainage_tf.training.run_directory import RunDirectory

    if len({Path(r).resolve() for r in run_dirs}) < len(run_dirs):
        raise UsageError("a run is given twice.")
    runs = [RunDirectory(Path(r)) for r in run_dirs]
    for run in runs:
        if not run.config_path.is_file():
            raise UsageError(f"{run.path} is not a run directory: it has no config.json.")
    configs = [run.read_config() for run in runs]
    datasets = sorted({template.dataset or config.dataset for config in configs})
    if len(datasets) > 1:
        raise UsageError(
            f"the runs were trained on different datasets ({', '.join(datasets)}); pick one with --dataset."
        )
    labels = model_labels([run.path for run in runs], [config.model for config in configs])
    members = []
    for run, label in zip(runs, labels, strict=True):
        request = dataclasses.replace(template, run_dir=run.path, dataset=datasets[0], out_dir=None)
        eval_dir = run_evaluation.evaluate(request, log=lambda line, label=label: log(f"[{label}] {line}"))
        predictions = read_predictions(eval_dir / "predictions.csv")
        own = json.loads((eval_dir / "metrics.json").read_text())
        members.append(Member(label, run.path, eval_dir, predictions, own))
    return members


def shared_subjects(members: Sequence[Member]) -> tuple[pd.DataFrame, list[str]]:
    """The members' predictions paired by subject, and notes on what was matched (UsageError if nothing)."""
    try:
        paired, dropped = pair_by_subject({m.label: m.predictions for m in members})
    except ValueError as error:
        raise UsageError(str(error)) from None
    counts = ", ".join(f"{m.label}: {len(m.predictions)}" for m in members)
    if paired.empty:
        raise UsageError(f"the runs share no evaluated subject ({counts} scans).")
    notes = [f"Matched by (subject_id, session): {len(paired)} scans that every run evaluated."]
    if any(dropped.values()):
        left = ", ".join(f"{n} of {label}" for label, n in dropped.items() if n)
        notes.append(
            f"The runs evaluated different scans ({counts}); compared on the {len(paired)} in common, "
            f"{left} left out."
        )
    return paired, notes


def compare(run_dirs: Sequence[Path], out_dir: Path, template, log: Callable[[str], None] = print) -> Path:
    """Writes report.md, cs_curves.png and metrics.json comparing the runs on one set; returns out_dir."""
    return compare_members(evaluate_members(run_dirs, template, log), out_dir, template)


def compare_members(members: Sequence[Member], out_dir: Path, template) -> Path:
    """`compare` for runs already evaluated by `evaluate_members`: one evaluation, several reports."""
    paired, notes = shared_subjects(members)
    ages = paired["age"].to_numpy()
    edges = tuple(template.age_edges or metrics.default_age_edges(float(ages.max())))
    alphas = metrics.cs_alphas(template.cs_max_alpha)
    rows = {}
    for m in members:
        try:
            rows[m.label] = metrics.evaluation_metrics(ages, paired[m.label], edges, alphas)
        except ValueError as error:
            raise UsageError(f"{m.label}: {error}") from None
    errors = {m.label: np.abs(paired[m.label].to_numpy() - ages) for m in members}
    tests = [
        {"a": a, "b": b, **paired_wilcoxon(errors[a], errors[b])}
        for a, b in itertools.combinations(errors, 2)
    ]
    evaluated = members[0].metrics["evaluated"]
    where = f"{evaluated['dataset']}:{evaluated['split']}"
    out_dir.mkdir(parents=True, exist_ok=True)
    plots.plot_cs_curves({label: row["cs"] for label, row in rows.items()}, out_dir / "cs_curves.png", where)
    summary = {
        "evaluated": {key: evaluated[key] for key in ("dataset", "split", "checkpoint")},
        "n_common": len(paired),
        "models": {
            m.label: {
                "run": str(m.run_dir),
                "eval_dir": str(m.eval_dir),
                "n_evaluated": len(m.predictions),
                **rows[m.label],
            }
            for m in members
        },
        "wilcoxon": tests,
    }
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    notes += [
        "Average is the overall per-subject MAE, as in the paper, not the mean of the group MAEs.",
        f"{evaluated['checkpoint'].capitalize()} checkpoint of each run; each run's own evaluation "
        "(all its scans, bias correction, intervals) is in its eval folder: "
        + ", ".join(f"{m.label}: {m.eval_dir}" for m in members)
        + ".",
        WILCOXON_NOTE,
    ]
    sections = {"Paired tests of the absolute errors": wilcoxon_table(tests)}
    write_report(out_dir, f"Comparison on {where}", rows, sections, notes, {"CS curves": "cs_curves.png"})
    return out_dir


WILCOXON_NOTE = (
    "Paired test: two-sided Wilcoxon signed-rank test (Wilcoxon 1945, Biometrics Bulletin 1:80-83) of the "
    "absolute errors on the subjects both models predicted finitely; zero differences are dropped; "
    "p-values are not corrected for multiple comparisons."
)


def write_report(out_dir: Path, title: str, rows, sections: Mapping[str, str], notes, figures) -> Path:
    """report.md: `report.write_report`'s tables, then `sections` (heading -> Markdown), notes and figures."""
    path = report.write_report(out_dir / report.REPORT_NAME, title, rows, {}, ())
    parts = [path.read_text(encoding="utf-8").rstrip("\n")]
    parts += [f"## {heading}\n\n{body.rstrip()}" for heading, body in sections.items()]
    parts.append("## Notes\n\n" + "\n".join(f"- {note}" for note in notes))
    parts.append("## Figures\n\n" + "\n\n".join(f"![{caption}]({file})" for caption, file in figures.items()))
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return path


def number(value: float | None, spec: str) -> str:
    """`value` formatted, or the report's "–" when it is missing."""
    return report.EMPTY if value is None else format(value, spec)
