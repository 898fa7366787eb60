"""Ensembles of runs, as the paper's conclusion proposes: the plain mean and age-dependent weights.

He et al. (ISBI 2020) found 2D-ResNet18+LSTM better at both ends of the age range and
3D-ResNet18 better in the middle, and proposed combining them. `ensemble()` evaluates
each member, then combines their predictions on the evaluated split:

- mean: the plain average of the members;
- age-weighted: one set of member weights per age group of the *mean* prediction
  (the true age is unknown at prediction time), chosen on a simplex grid (step 0.1)
  to minimise the MAE of the members' validation predictions in that group; a group
  with fewer than 5 validation scans takes the weights best over all of them.

The weights are fitted on the runs' `validation_predictions.csv`, never on the
evaluated data. The fitting is pure numpy.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from brainage_tf.errors import UsageError
from brainage_tf.evaluation import compare, metrics, plots
from brainage_tf.training.run_directory import RunDirectory

WEIGHT_STEP = 0.1
MIN_GROUP_SIZE = 5
MEAN, WEIGHTED = "ensemble (mean)", "ensemble (age-weighted)"


def simplex_grid(members: int, step: float = WEIGHT_STEP) -> np.ndarray:
    """Every weight vector of `members` non-negative multiples of `step` summing to 1, one per row."""
    parts = round(1.0 / step)
    rows = []
    # Stars and bars: members - 1 bars among parts + members - 1 places.
    for bars in itertools.combinations(range(parts + members - 1), members - 1):
        edges = (-1, *bars, parts + members - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(members)])
    return np.array(rows, float) / parts


def mean_prediction_group(predictions: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Age group of each subject's mean prediction; means beyond the edges join the first or last group."""
    mean = np.asarray(predictions, float).mean(axis=1)
    return metrics.age_group_index(np.clip(mean, edges[0], edges[-1]), edges)


def best_weights(ages: np.ndarray, predictions: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, float]:
    """The grid row with the lowest MAE (ties: the one nearest equal weights) and that MAE."""
    mae = np.abs(predictions @ grid.T - ages[:, None]).mean(axis=0)
    tied = np.flatnonzero(mae <= mae.min() + 1e-12)
    spread = np.abs(grid[tied] - 1.0 / grid.shape[1]).sum(axis=1)
    best = tied[np.argmin(spread)]
    return grid[best], float(mae[best])


@dataclasses.dataclass(frozen=True)
class AgeWeights:
    """Member weights per age group of the mean prediction.

    Attributes:
        edges: Age-group edges (years).
        weights: (groups, members) weights, each row summing to 1.
        global_weights: The weights best over all validation scans.
        groups: Per group: n_validation, validation_mae, mean_validation_mae, fallback.
        n_validation: Validation scans fitted on (every member finite).
        global_mae: Validation MAE of `global_weights`.
    """

    edges: tuple[float, ...]
    weights: np.ndarray
    global_weights: np.ndarray
    groups: list[dict]
    n_validation: int
    global_mae: float

    def apply(self, predictions: np.ndarray) -> np.ndarray:
        """The weighted prediction of each subject (NaN where a member's prediction is not finite)."""
        predictions = np.asarray(predictions, float)
        combined = np.full(len(predictions), np.nan)
        usable = np.isfinite(predictions).all(axis=1)
        group = mean_prediction_group(predictions[usable], self.edges)
        combined[usable] = np.sum(self.weights[group] * predictions[usable], axis=1)
        return combined

    def to_json(self, members: Sequence[str]) -> dict:
        labels = metrics.age_group_labels(self.edges)
        return {
            "members": list(members),
            "grouped_by": "mean prediction of the members",
            "step": WEIGHT_STEP,
            "min_group_size": MIN_GROUP_SIZE,
            "n_validation": self.n_validation,
            "global": {"weights": self.global_weights.tolist(), "validation_mae": self.global_mae},
            "groups": [
                {"label": label, "low": low, "high": high, "weights": w.tolist(), **info}
                for label, low, high, w, info in zip(
                    labels, self.edges[:-1], self.edges[1:], self.weights, self.groups, strict=True
                )
            ],
        }


def fit_age_weights(
    ages, predictions, edges: Sequence[float], step: float = WEIGHT_STEP, min_group: int = MIN_GROUP_SIZE
) -> AgeWeights:
    """Fits member weights per age group of the mean prediction on validation scans.

    Args:
        ages: True ages of the validation scans, (n,).
        predictions: The members' predictions of them, (n, members).
        edges: Age-group edges.
        step: Grid step of the weights.
        min_group: A group with fewer scans takes the global best weights.

    Raises:
        ValueError: No validation scan that every member predicted finitely.
    """
    ages, predictions = np.asarray(ages, float), np.asarray(predictions, float)
    usable = np.isfinite(predictions).all(axis=1) & np.isfinite(ages)
    ages, predictions = ages[usable], predictions[usable]
    if not ages.size:
        raise ValueError("no validation scan that every member predicted finitely")
    grid = simplex_grid(predictions.shape[1], step)
    global_weights, global_mae = best_weights(ages, predictions, grid)
    group = mean_prediction_group(predictions, edges)
    weights, groups = [], []
    for index in range(len(edges) - 1):
        inside = group == index
        n = int(inside.sum())
        fallback = n < min_group
        w, mae = (global_weights, None) if fallback else best_weights(ages[inside], predictions[inside], grid)
        if fallback and n:
            mae = float(np.abs(predictions[inside] @ w - ages[inside]).mean())
        mean_mae = float(np.abs(predictions[inside].mean(axis=1) - ages[inside]).mean()) if n else None
        weights.append(w)
        groups.append(
            dict(n_validation=n, validation_mae=mae, mean_validation_mae=mean_mae, fallback=fallback)
        )
    return AgeWeights(
        tuple(float(e) for e in edges), np.array(weights), global_weights, groups, len(ages), global_mae
    )


def verdict(name: str, rows: dict, errors: dict, members: Sequence[str]) -> tuple[str, dict]:
    """Whether an ensemble beats every member on MAE, and its Wilcoxon test against the best member."""
    best = min(members, key=lambda label: rows[label]["mae"])
    beats = all(rows[name]["mae"] < rows[label]["mae"] for label in members)
    test = compare.paired_wilcoxon(errors[name], errors[best])
    p, median = (
        compare.number(test[key], spec) for key, spec in (("p_value", ".3g"), ("median_difference", "+.3f"))
    )
    tested = (
        f"Wilcoxon against {best}: n = {test['n']}, median AE difference {median} y, p = {p}."
        if test["p_value"] is not None
        else f"Same absolute errors as {best} on all {test['n']} scans: no test."
    )
    line = (
        f"{name}: MAE {rows[name]['mae']:.2f} y, {'' if beats else 'not '}lower than every member's "
        f"on this set (best member {best}, {rows[best]['mae']:.2f} y). {tested}"
    )
    return line, {"ensemble": name, "beats_every_member": beats, "best_member": best, "wilcoxon": test}


def validation_weights(members: Sequence[compare.Member], template, notes: list[str]) -> AgeWeights | None:
    """Age weights fitted on the members' validation predictions, or None (with a note saying why)."""
    paths = {
        m.label: RunDirectory(m.run_dir).checkpoint_file("validation_predictions.csv", template.checkpoint)
        for m in members
    }
    missing = [label for label, path in paths.items() if not path.is_file()]
    if missing:
        notes.append(
            f"No age-weighted ensemble: no validation predictions for {', '.join(missing)} "
            "(trained with --validation-fraction 0); the mean only."
        )
        return None
    try:
        validation, dropped = compare.pair_by_subject(
            {label: compare.read_predictions(path) for label, path in paths.items()}
        )
        if validation.empty:
            raise ValueError("the runs share no validation subject")
        edges = tuple(template.age_edges or metrics.default_age_edges(float(validation["age"].max())))
        weights = fit_age_weights(validation["age"], validation[[m.label for m in members]], edges)
    except ValueError as error:
        notes.append(f"No age-weighted ensemble: {error}; the mean only.")
        return None
    unmatched = ", ".join(f"{n} of {label}" for label, n in dropped.items() if n)
    fallback = sum(group["fallback"] for group in weights.groups)
    best = ", ".join(f"{w:.1f}" for w in weights.global_weights)
    notes.append(
        f"Age-weighted: weights fitted on the {weights.n_validation} validation scans every member predicted"
        + (f" ({unmatched} unmatched left out)" if unmatched else "")
        + f", per age group of the mean prediction; {fallback} of {len(weights.groups)} groups had fewer "
        f"than {MIN_GROUP_SIZE} and took the weights best over all ({best}); see ensemble_weights.json."
    )
    return weights


def ensemble(run_dirs: Sequence[Path], out_dir: Path, template, log: Callable[[str], None] = print) -> Path:
    """Writes predictions.csv, ensemble_weights.json, metrics.json, cs_curves.png and report.md."""
    return ensemble_members(compare.evaluate_members(run_dirs, template, log), out_dir, template)


def ensemble_members(members: Sequence[compare.Member], out_dir: Path, template) -> Path:
    """`ensemble` for runs already evaluated by `compare.evaluate_members`: one evaluation, many reports."""
    labels = [m.label for m in members]
    paired, notes = compare.shared_subjects(members)
    ages, predictions = paired["age"].to_numpy(), paired[labels].to_numpy()
    out_dir.mkdir(parents=True, exist_ok=True)
    combined = {MEAN: predictions.mean(axis=1)}

    weights = validation_weights(members, template, notes)
    if weights is not None:
        (out_dir / "ensemble_weights.json").write_text(json.dumps(weights.to_json(labels), indent=2) + "\n")
        combined[WEIGHTED] = weights.apply(predictions)

    table = paired.copy()
    table["ensemble_mean"] = combined[MEAN]
    if WEIGHTED in combined:
        table["ensemble_age_weighted"] = combined[WEIGHTED]
    table.to_csv(out_dir / "predictions.csv", index=False)

    edges = tuple(template.age_edges or metrics.default_age_edges(float(ages.max())))
    alphas = metrics.cs_alphas(template.cs_max_alpha)
    values = {**{label: paired[label].to_numpy() for label in labels}, **combined}
    rows, errors = {}, {}
    for label, predicted in values.items():
        try:
            rows[label] = metrics.evaluation_metrics(ages, predicted, edges, alphas)
        except ValueError as error:
            raise UsageError(f"{label}: {error}") from None
        errors[label] = np.abs(predicted - ages)
    verdicts = [verdict(name, rows, errors, labels) for name in combined]

    evaluated = members[0].metrics["evaluated"]
    where = f"{evaluated['dataset']}:{evaluated['split']}"
    plots.plot_cs_curves({label: row["cs"] for label, row in rows.items()}, out_dir / "cs_curves.png", where)
    summary = {
        "evaluated": {key: evaluated[key] for key in ("dataset", "split", "checkpoint")},
        "n_common": len(paired),
        "members": {m.label: {"run": str(m.run_dir), "eval_dir": str(m.eval_dir)} for m in members},
        "models": rows,
        "ensembles": [result for _, result in verdicts],
    }
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    tests = [
        {"a": result["ensemble"], "b": result["best_member"], **result["wilcoxon"]} for _, result in verdicts
    ]
    sections = {
        "Does an ensemble beat its members?": "\n".join(f"- {line}" for line, _ in verdicts),
        "Paired tests against the best member": compare.wilcoxon_table(tests),
    }
    notes += ["Average is the overall per-subject MAE, as in the paper.", compare.WILCOXON_NOTE]
    compare.write_report(
        out_dir, f"Ensemble on {where}", rows, sections, notes, {"CS curves": "cs_curves.png"}
    )
    return out_dir
