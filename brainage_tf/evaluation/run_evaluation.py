"""Evaluate one run on one dataset split: predictions, metrics, plots and a report.

The calibration (bias correction, conformal intervals, out-of-distribution ranges)
comes from the run's own training split, never from the evaluated data
(`run_calibration`: fitted once, reused while its inputs are unchanged); the
validation predictions beside it (`validation_predictions.csv`) are what ensembles
fit their member weights on.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from brainage_tf import data
from brainage_tf.defaults import GROUND_TRUTH_COLUMNS, TEMPO_COLUMN
from brainage_tf.errors import DatasetError, UsageError
from brainage_tf.evaluation import gap_truth, inference, metrics, plots, report
from brainage_tf.evaluation.calibration import DEFAULT_CONFORMAL_LEVEL
from brainage_tf.evaluation.run_calibration import Calibration, calibrate
from brainage_tf.preprocessing import GRIDS
from brainage_tf.preprocessing_record import record_differences
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.run_directory import RunDirectory

PREDICTION_COLUMNS = (
    "subject_id",
    "session",
    "site",
    "sex",
    "age",
    "predicted_age",
    "brain_age_gap",
    "corrected_predicted_age",
    "corrected_brain_age_gap",
    "interval_low",
    "interval_high",
    "ood",
    "ood_reason",
)


@dataclasses.dataclass(frozen=True)
class EvaluationRequest:
    """What to evaluate and how.

    Attributes:
        run_dir: The training run directory.
        dataset: TFDS name/config (None: the run's dataset).
        split: Split to evaluate.
        data_dir: TFDS data dir (None: the run's).
        checkpoint: "best" or "last".
        ages: (min, max) ages evaluated, inclusive (None: the run's training range).
        age_edges: Age-group edges (None: the paper's groups for the age range).
        cs_max_alpha: Largest error level of the CS curve, years.
        conformal_level: Coverage the prediction intervals aim at.
        conformal_by_age_bin: Calibrate one interval width per age group of the predicted age.
        out_dir: Output folder (None: RUN_DIR/eval/<dataset>-<split>).
        explain: Also write saliency maps per age group into `<out_dir>/explain/`.
    """

    run_dir: Path
    dataset: str | None = None
    split: str = "test"
    data_dir: str | None = None
    checkpoint: str = "best"
    ages: tuple[float, float] | None = None
    age_edges: Sequence[float] | None = None
    cs_max_alpha: float = metrics.CS_MAX_ALPHA
    conformal_level: float = DEFAULT_CONFORMAL_LEVEL
    conformal_by_age_bin: bool = False
    out_dir: Path | None = None
    explain: bool = False


def evaluate(request: EvaluationRequest, log: Callable[[str], None] = print) -> Path:
    """Writes predictions.csv, metrics.json, the plots and report.md; returns the output folder.

    Raises:
        UsageError: A run without a finished model, an unknown dataset or split, no
            subject in the age range, or a dataset preprocessed otherwise than the run's
            training data (another grid, registration or preprocessing version).
    """
    run = RunDirectory(request.run_dir)
    config = run.read_config()
    dataset = request.dataset or config.dataset
    try:
        source = data.tfds_source(dataset, request.split, request.data_dir or config.data_dir)
    except DatasetError as error:
        raise UsageError(str(error)) from None
    model = inference.load_run_model(run, config, source.volume_shape, request.checkpoint)
    check_same_preprocessing(config, source)
    low_age, high_age = request.ages or (config.min_age, config.max_age)
    labels = data.read_labels(source)
    in_range = (labels.ages >= low_age) & (labels.ages <= high_age)
    if not in_range.any():
        raise UsageError(f"no subject of {source.description} is aged {low_age}-{high_age} y.")
    # The paper's groups follow the evaluated cohort: one-year bins for a 0-6 y set (Tables 2-3).
    edges = tuple(request.age_edges or metrics.default_age_edges(float(labels.ages[in_range].max())))

    log(f"calibrating on the training split of {config.dataset} (bias correction, intervals, ranges)")
    by_bin = edges if request.conformal_by_age_bin else None
    calibration = calibrate(
        run, config, lambda: model, request.checkpoint, request.conformal_level, by_bin, log
    )
    log(f"predicting {int(in_range.sum())} scans of {source.description} aged {low_age}-{high_age} y")
    result = inference.predict(model, source, data.Selection(low_age, high_age, 0.0), "all")
    suffix = "" if request.checkpoint == "best" else f"-{request.checkpoint}"
    folder = f"{dataset.replace('/', '-')}-{request.split}{suffix}"
    out_dir = request.out_dir or run.path / "eval" / folder
    out_dir.mkdir(parents=True, exist_ok=True)
    table = prediction_table(result, calibration)
    # Rows by subject for readers; the arrays below keep dataset order.
    table.sort_values(["subject_id", "session"], kind="stable").to_csv(
        out_dir / "predictions.csv", index=False
    )

    alphas = metrics.cs_alphas(request.cs_max_alpha)
    summary = metrics.evaluation_metrics(result.ages, result.predicted, edges, alphas)
    if calibration.bias_correction:
        corrected = table["corrected_predicted_age"].to_numpy()
        summary["bias_corrected"] = metrics.evaluation_metrics(result.ages, corrected, edges, alphas)
    if calibration.conformal:
        low, high = table["interval_low"].to_numpy(), table["interval_high"].to_numpy()
        finite = np.isfinite(result.predicted)
        summary["conformal"] = {
            "level": calibration.conformal.level,
            "n_calibration": calibration.conformal.n_calibration,
            "coverage": float(np.mean((low <= result.ages) & (result.ages <= high) & finite)),
            # None when too few validation scans make the interval unbounded (strict JSON has no inf).
            "mean_width": _finite_or_none(np.mean(high[finite] - low[finite])) if finite.any() else None,
        }
    summary.update(gap_truth.biomarker_metrics(table))  # ground truth, longitudinal: when there
    summary["ood_flagged"] = int(table["ood"].sum())
    summary["evaluated"] = dict(
        run=str(run.path),
        checkpoint=request.checkpoint,
        dataset=dataset,
        split=request.split,
        ages=[low_age, high_age],
        n_outside_age_range=int((~in_range).sum()),
    )
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_figures_and_report(out_dir, config.model, result, table, summary, edges, calibration)
    if request.explain:
        from brainage_tf.explanation.group_maps import explain_split

        log(f"saliency maps of {len(result)} scans, averaged per age group (--explain)")
        grid = config.preprocessing["grid"]
        # A dataset on no preset grid (toy data) has no MNI placement: its maps keep voxel coordinates.
        affine = GRIDS[grid].affine if grid in GRIDS else np.eye(4)
        title = f"{config.model} saliency by age group, {dataset}:{request.split}"
        selection = data.Selection(low_age, high_age, 0.0)
        explain_split(model, source, selection, edges, affine, out_dir / "explain", title)
    if summary["n_nonfinite"]:
        log(f"{summary['n_nonfinite']} scans have non-finite predictions; they are listed in predictions.csv")
    return out_dir


def check_same_preprocessing(config: TrainConfig, source: data.ExampleSource) -> None:
    """Refuses a dataset preprocessed otherwise than the run's training data; other sites are fine.

    Raises:
        UsageError: The run has no preprocessing record, or the dataset's differs from it.
    """
    if config.preprocessing is None:
        raise UsageError(
            "the run's config.json has no preprocessing record (it was trained on in-memory data or by "
            f"an older version), so nothing says {source.description} is preprocessed as its training data."
        )
    differences = record_differences(config.preprocessing, source.preprocessing or {})
    if differences:
        raise UsageError(
            f"{source.description} was preprocessed otherwise than the run's training data (run vs "
            f"dataset: {'; '.join(differences)}); evaluate on a dataset built with the run's settings."
        )


def prediction_table(result: inference.Predictions, calibration: Calibration) -> pd.DataFrame:
    """predictions.csv as a DataFrame, one row per scan (non-finite predictions kept)."""
    rows = len(result)
    column = {
        name: result.columns.get(name, np.full(rows, "")) for name in ("subject_id", "session", "site", "sex")
    }
    table = pd.DataFrame(column)
    table["age"] = result.ages
    table["predicted_age"] = result.predicted
    table["brain_age_gap"] = result.predicted - result.ages
    nan = np.full(rows, np.nan)
    corrected = (
        calibration.bias_correction.apply(result.predicted, result.ages)
        if calibration.bias_correction
        else nan
    )
    table["corrected_predicted_age"] = corrected
    table["corrected_brain_age_gap"] = corrected - result.ages
    low, high = calibration.conformal.interval(result.predicted) if calibration.conformal else (nan, nan)
    table["interval_low"], table["interval_high"] = low, high
    reasons = calibration.reference.reasons(
        result.predicted, result.columns.get("registration_ncc"), result.intensity_mean, result.intensity_std
    )
    table["ood"] = [bool(reason) for reason in reasons]
    table["ood_reason"] = reasons
    # The ground truth, when the dataset lists it for some scan (NaN elsewhere).
    truth = [name for name in GROUND_TRUTH_COLUMNS if np.isfinite(result.columns.get(name, np.nan)).any()]
    for name in truth:
        table[name] = result.columns[name].astype(np.float64)
    return table[[*PREDICTION_COLUMNS, *truth]]


def _calibration_note(calibration: Calibration) -> str:
    """What the report says the bias correction and intervals were fitted on."""
    if calibration.calibration_part is None:
        return "No bias correction or intervals: the run has no validation part (--validation-fraction 0)."
    bias = (
        f"Bias correction: de Lange & Cole 2020, fitted on the {calibration.n_validation} validation scans."
        if calibration.bias_correction
        else "No bias correction: too few validation scans."
    )
    part = calibration.calibration_part
    intervals = (
        f" Intervals: split conformal on {part['subjects']} calibration subjects, which took no part in "
        f"choosing the epoch ({part['selection_subjects']} other validation subjects did)."
        if calibration.conformal
        else " No intervals: no calibration subject (--calibration-fraction)."
    )
    return bias + intervals


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def write_figures_and_report(
    out_dir: Path, model_name: str, result, table, summary, edges, calibration
) -> None:
    """The four plots and report.md of one evaluation."""
    title = f"{model_name} on {summary['evaluated']['dataset']}:{summary['evaluated']['split']}"
    corrected = table["corrected_predicted_age"].to_numpy() if calibration.bias_correction else None
    figures = {
        "CS curve": plots.plot_cs_curves({model_name: summary["cs"]}, out_dir / "cs_curve.png", title),
        "Predicted against chronological age": plots.plot_predicted_vs_age(
            result.ages, result.predicted, out_dir / "predicted_vs_age.png", title, corrected=corrected
        ),
        "Absolute error by age group": plots.plot_error_by_age_group(
            result.ages,
            result.predicted,
            edges,
            metrics.age_group_labels(edges),
            out_dir / "error_by_age_group.png",
            title,
        ),
        "Brain-age gap against age": plots.plot_gap_vs_age(
            result.ages,
            table["brain_age_gap"].to_numpy(),
            out_dir / "gap_vs_age.png",
            title,
            corrected_gap=None if corrected is None else table["corrected_brain_age_gap"].to_numpy(),
        ),
    }
    if summary.get("longitudinal"):
        # The bias-corrected gap when there is one: the raw gap's age trend would read as change.
        figures["Brain-age gap over visits, one line per subject"] = plots.plot_gap_trajectories(
            table["subject_id"],
            result.ages,
            table["brain_age_gap" if corrected is None else "corrected_brain_age_gap"],
            out_dir / "gaps.png",
            title,
            table.get(TEMPO_COLUMN),
            "brain-age gap" if corrected is None else "bias-corrected gap",
        )
    notes = [
        "Average is the overall per-subject MAE, as in the paper, not the mean of the group MAEs.",
        f"Run {summary['evaluated']['run']} ({summary['evaluated']['checkpoint']} checkpoint); "
        f"ages {summary['evaluated']['ages'][0]:g}-{summary['evaluated']['ages'][1]:g} y; "
        f"{summary['evaluated']['n_outside_age_range']} scans outside that range not evaluated.",
        _calibration_note(calibration),
        f"{summary['ood_flagged']} scans flagged out of distribution (predictions.csv, column ood_reason).",
    ]
    report.write_report(out_dir / "report.md", f"Evaluation: {title}", {model_name: summary}, figures, notes)
