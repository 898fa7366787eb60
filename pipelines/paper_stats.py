"""Seeds in the paper experiment: per-cell mean ± SD over seeds, and the paired 2D-vs-3D tests.

`python -m pipelines.paper_experiment --seeds K` trains every model K times on the same
subject-hash split. This module turns the K evaluations of one table into its cells and
tests; it reads nothing and writes nothing (pure numpy/pandas/scipy):

- a cell is the mean ± sample SD (ddof 1) of the K seeds' values, and the plain value for K = 1,
  so a one-seed table reads as `report.paper_table` prints it;
- per seed, the two models' absolute errors are averaged per subject (a subject's visits are
  not independent) and compared with the two-sided Wilcoxon signed-rank test of
  `compare.paired_wilcoxon`;
- across seeds, the per-seed MAE differences get their mean, a t-based 95 % confidence interval
  and a one-sample (= paired) t-test; it measures training randomness on a fixed test set;
- each ensemble's verdict (`ensemble.verdict`, per seed) is counted over the seeds;
- the ground-truth and longitudinal figures of each model's own evaluation, when the cohort
  allows them, get the same mean ± SD cells (`biomarker_sections`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from brainage_tf.evaluation import compare, report

CONFIDENCE = 0.95


def finite(values: Sequence[float | None]) -> list[float]:
    """The values that are numbers and finite (a seed's empty age group gives None)."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def mean_sd(values: Sequence[float | None]) -> dict:
    """{"per_seed", "mean", "sd"} of one figure over seeds; sd (ddof 1) needs two finite values."""
    kept = finite(values)
    return {
        "per_seed": list(values),
        "mean": float(np.mean(kept)) if kept else None,
        "sd": float(np.std(kept, ddof=1)) if len(kept) > 1 else None,
    }


def cell(values: Sequence[float | None], digits: int = 2) -> str:
    """A table cell: the value for one seed, "mean ± SD" for several, "–" when none is finite."""
    summary = mean_sd(values)
    if summary["mean"] is None:
        return report.EMPTY
    mean = f"{summary['mean']:.{digits}f}"
    if len(values) == 1:
        return mean
    return f"{mean} ± {report.EMPTY if summary['sd'] is None else format(summary['sd'], f'.{digits}f')}"


def count(values: Sequence[int]) -> str:
    """A count over seeds: one number where the seeds agree, else "lowest-highest"."""
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def seed_rows(per_seed: Sequence[Mapping[str, Mapping]]) -> dict[str, dict]:
    """Each row's figures as lists over seeds, from one metrics dict per row and seed.

    Args:
        per_seed: One dict per seed, row label -> that seed's `metrics.evaluation_metrics`
            dict (or a published row with "mae" and "age_groups" only).

    Returns:
        Row label -> {"mae": [...], "n": [...], "age_groups": [{"label", "mae": [...], "n": [...]}]},
        rows and groups in order of first appearance; a missing "n" is left out of its list.
    """
    rows: dict[str, dict] = {}
    for seed_metrics in per_seed:
        for label, metrics in seed_metrics.items():
            row = rows.setdefault(label, {"mae": [], "n": [], "age_groups": {}})
            row["mae"].append(metrics["mae"])
            row["n"] += [metrics["n"]] if metrics.get("n") is not None else []
            for group in metrics["age_groups"]:
                entry = row["age_groups"].setdefault(group["label"], {"mae": [], "n": []})
                entry["mae"].append(group.get("mae"))
                entry["n"] += [group["n"]] if group.get("n") is not None else []
    for row in rows.values():
        row["age_groups"] = [{"label": label, **entry} for label, entry in row["age_groups"].items()]
    return rows


def seed_table(rows: Mapping[str, Mapping]) -> str:
    """The paper's table layout with one cell per row and age group over seeds (`cell`).

    Args:
        rows: `seed_rows` output. With one seed per row the table equals `report.paper_table`'s.

    Returns:
        The Markdown table, ending with a newline; the closing "n" row gives the scans per
        group, each row's counts joined by "/" where rows differ (as `report.paper_table`).
    """
    labels = list(dict.fromkeys(group["label"] for row in rows.values() for group in row["age_groups"]))
    lines = [_line(["Method", *labels, "Average"]), _line(["---", *["---:"] * (len(labels) + 1)])]
    counts: list[list[str]] = [[] for _ in range(len(labels) + 1)]
    for name, row in rows.items():
        groups = {group["label"]: group for group in row["age_groups"]}
        cells = [cell(groups[label]["mae"]) if label in groups else report.EMPTY for label in labels]
        lines.append(_line([name.replace("|", "\\|"), *cells, cell(row["mae"])]))
        for column, label in enumerate(labels):
            if groups.get(label, {}).get("n"):
                counts[column].append(count(groups[label]["n"]))
        if row["n"]:
            counts[-1].append(count(row["n"]))
    lines.append(
        _line(["n", *("/".join(c) if len(set(c)) > 1 else (c[0] if c else report.EMPTY) for c in counts)])
    )
    return "\n".join(lines) + "\n"


def subject_errors(predictions: pd.DataFrame, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """Two models' absolute errors averaged per subject, over the scans both predicted finitely.

    A subject's visits share the subject; averaging them first makes subjects the unit of the test.

    Args:
        predictions: subject_id, age and one predicted-age column per model (an ensemble's predictions.csv).
        a: First model's column.
        b: Second model's column.

    Returns:
        (errors of a, errors of b), one per subject, in subject order.
    """
    ages = predictions["age"].to_numpy(float)
    error_a = np.abs(predictions[a].to_numpy(float) - ages)
    error_b = np.abs(predictions[b].to_numpy(float) - ages)
    both = np.isfinite(error_a) & np.isfinite(error_b)
    frame = pd.DataFrame({"a": error_a[both], "b": error_b[both]})
    means = frame.groupby(predictions["subject_id"].to_numpy()[both], sort=True).mean()
    return means["a"].to_numpy(), means["b"].to_numpy()


def across_seeds(differences: Sequence[float]) -> dict:
    """Mean of per-seed paired differences, with a t-based 95 % CI and two-sided t-test p from K >= 2.

    The seeds share the test subjects, so the interval covers training randomness (weight
    initialisation and batch order) on this test set, not sampling of new subjects.

    Returns:
        {"k", "mean", "sd", "ci95" ([low, high] or None), "t", "p_value"}; t and p are None
        with fewer than 2 seeds or identical differences.
    """
    d = np.asarray(differences, float)
    result = {"k": len(d), "mean": float(d.mean()), "sd": None, "ci95": None, "t": None, "p_value": None}
    if len(d) < 2:
        return result
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(d) - 1)) * sd / math.sqrt(len(d))
    result.update(sd=sd, ci95=[result["mean"] - half, result["mean"] + half])
    if sd > 0:
        test = stats.ttest_1samp(d, 0.0)
        result.update(t=float(test.statistic), p_value=float(test.pvalue))
    return result


def model_comparison(seeds: Sequence[Mapping], a: str, b: str) -> dict:
    """Model a against model b, paired by seed: per seed MAE and per-subject Wilcoxon, then across seeds.

    Args:
        seeds: Per seed {"seed", "models" (label -> metrics), "predictions" (DataFrame)}.
        a: First model's label (the difference is a - b).
        b: Second model's label.

    Returns:
        {"a", "b", "per_seed": [{"seed", "mae_a", "mae_b", "difference", "wilcoxon"}],
        "across_seeds": `across_seeds` of the MAE differences}.
    """
    per_seed = []
    for seed in seeds:
        mae_a, mae_b = seed["models"][a]["mae"], seed["models"][b]["mae"]
        test = compare.paired_wilcoxon(*subject_errors(seed["predictions"], a, b))
        per_seed.append(
            {
                "seed": seed["seed"],
                "mae_a": mae_a,
                "mae_b": mae_b,
                "difference": mae_a - mae_b,
                "wilcoxon": test,
            }
        )
    differences = [entry["difference"] for entry in per_seed]
    return {"a": a, "b": b, "per_seed": per_seed, "across_seeds": across_seeds(differences)}


def comparison_sentence(comparison: Mapping) -> str:
    """The paired comparison as the report says it: per-subject Wilcoxon, and with seeds the t-based CI."""
    a, b, per_seed = comparison["a"], comparison["b"], comparison["per_seed"]
    wilcoxon = [entry["wilcoxon"] for entry in per_seed]
    p_values = ", ".join(compare.number(test["p_value"], ".3g") for test in wilcoxon)
    subjects = count([test["n"] for test in wilcoxon])
    if len(per_seed) == 1:
        median = compare.number(wilcoxon[0]["median_difference"], "+.3f")
        return (
            f"paired by subject (n = {subjects}), median absolute-error difference {a} − {b} {median} y, "
            f"Wilcoxon p = {p_values}."
        )
    summary = comparison["across_seeds"]
    differences = ", ".join(f"{entry['difference']:+.2f}" for entry in per_seed)
    if summary["p_value"] is None:
        tested = "no t-test: the differences are identical"
    else:
        low, high = summary["ci95"]
        tested = f"95 % CI {low:+.2f} to {high:+.2f}, paired t-test p = {summary['p_value']:.3g}"
    return (
        f"MAE difference {a} − {b} per seed {differences} y, mean over {len(per_seed)} seeds "
        f"{summary['mean']:+.2f} y ({tested}); per seed, paired by subject (n = {subjects}), "
        f"Wilcoxon p = {p_values}."
    )


def ensemble_verdicts(seeds: Sequence[Mapping]) -> list[str]:
    """Per ensemble: does it beat every member (in how many seeds), and its Wilcoxon test against the best."""
    results: dict[str, list[Mapping]] = {}
    for seed in seeds:
        for result in seed["ensembles"]:
            results.setdefault(result["ensemble"], []).append(result)
    lines = []
    for name, runs in results.items():
        if len(seeds) == 1:
            (e,) = runs
            lines.append(
                f"{name}: MAE {'' if e['beats_every_member'] else 'not '}lower than every member's "
                f"(best member {e['best_member']}, {_wilcoxon(e['wilcoxon'])})"
            )
            continue
        wins = sum(bool(e["beats_every_member"]) for e in runs)
        p_values = ", ".join(compare.number(e["wilcoxon"]["p_value"], ".3g") for e in runs)
        lines.append(
            f"{name}: MAE lower than every member's in {wins} of {len(runs)} seeds (best member per seed "
            f"{', '.join(e['best_member'] for e in runs)}; Wilcoxon p against it {p_values})"
        )
    return lines


def _line(cells: Sequence[str]) -> str:
    """One Markdown table line."""
    return "| " + " | ".join(cells) + " |"


def _wilcoxon(test: Mapping) -> str:
    """The ensemble's paired test against its best member, in a few words."""
    if test["p_value"] is None:
        return "the same errors, no test"
    return f"Wilcoxon p = {test['p_value']:.3g}"


def biomarker_sections(rows: Mapping[str, Sequence[Mapping]]) -> list[str]:
    """The ground-truth and longitudinal tables of `report`, each cell the mean ± SD over seeds.

    Args:
        rows: Row label -> one dict per seed with the model evaluation's `"truth"` and
            `"longitudinal"` entries (absent when the cohort gives none).

    Returns:
        Per table that some row has: a heading, the Markdown table and its note; [] for none.
    """
    sections = []
    for heading, columns, note in (
        (report.TRUTH_HEADING, report.TRUTH_COLUMNS, report.TRUTH_NOTE),
        (report.LONGITUDINAL_HEADING, report.LONGITUDINAL_COLUMNS, report.LONGITUDINAL_NOTE),
    ):
        having = {
            label: seeds for label, seeds in rows.items() if any(s.get(columns[0][1][0]) for s in seeds)
        }
        if not having:
            continue
        lines = [
            "| Method | " + " | ".join(c[0] for c in columns) + " |",
            "|---" + "|---:" * len(columns) + "|",
        ]
        for label, seeds in having.items():
            cells = []
            for _, keys, digits in columns:
                values = [report.nested(seed, keys) for seed in seeds]
                counts = [v for v in values if v is not None]
                cells.append(cell(values, digits) if digits else count(counts) if counts else report.EMPTY)
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        sections += ["#" + heading, "\n".join(lines), note]
    return sections
