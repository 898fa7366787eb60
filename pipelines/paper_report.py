"""The report of `python -m pipelines.paper_experiment`: the paper's tables, CS figures, timing, beside ours.

He et al. (ISBI 2020) report MAE per age group in three tables and the cumulative score
in two figures; this module holds their published numbers (typed in from the paper, once)
and writes `report.md` with the paper's rows and ours in one table each, clearly labelled:
the paper's on NIH-PD (discovery) and MGHBCH (replication), ours on the named cohort. The
tables themselves are `brainage_tf.evaluation.report.paper_table`; the figures are the
CS curves that `brainage_tf.evaluation.compare` draws. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from brainage_tf.evaluation import metrics, report

PAPER = "He et al. 2020"
# The paper's names of our two models.
PAPER_MODEL_NAMES = {"slice_lstm": "2D-ResNet18+LSTM", "resnet3d": "3D-ResNet18"}
# The models the paper compares: the experiment trains these, in this order, whatever else is registered.
PAPER_MODELS = tuple(PAPER_MODEL_NAMES)
# He et al. (ISBI 2020) Tables 1-3: (MAE per age group, Average), years, as printed.
PAPER_MAE = {
    "table1": {
        "resnet3d": ((0.30, 1.12, 1.19, 1.85), 1.07),
        "slice_lstm": ((0.32, 0.92, 1.02, 1.79), 0.96),
    },
    "table2": {
        "resnet3d": ((2.57, 2.43, 2.80, 2.64, 2.85, 2.75), 2.64),
        "slice_lstm": ((0.83, 1.65, 1.40, 1.36, 1.21, 0.83), 1.14),
    },
    "table3": {
        "resnet3d": ((0.66, 0.48, 0.43, 0.75, 1.26, 2.10), 0.79),
        "slice_lstm": ((0.24, 1.34, 1.43, 1.25, 0.69, 0.92), 0.78),
    },
}
# Section 3.2, with Table 3: training time on one NVIDIA K80 GPU, hours.
PAPER_TRAINING_HOURS = {"slice_lstm": 3.0, "resnet3d": 7.0}


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """One of the paper's three evaluations.

    Attributes:
        key: "table1", "table2" or "table3" (also the output folder's name).
        title: The paper's caption, shortened.
        setting: The training setting ("0-22" or "0-6") whose runs it evaluates.
        on_replication: Evaluated on the replication cohort (else the discovery test split).
        edges: The paper's age groups of that table.
        paper_set: Where the paper's numbers come from.
        paper_figure: The paper's CS figure of that evaluation ("" when it has none).
    """

    key: str
    title: str
    setting: str
    on_replication: bool
    edges: tuple[float, ...]
    paper_set: str
    paper_figure: str


TABLES = (
    TableSpec(
        "table1",
        "Table 1: discovery test split, trained on discovery 0-22 y",
        "0-22",
        False,
        metrics.PAPER_AGE_EDGES,
        "NIH-PD test split",
        "Fig. 4",
    ),
    TableSpec(
        "table2",
        "Table 2: replication cohort, trained on discovery 0-22 y",
        "0-22",
        True,
        metrics.YOUNG_AGE_EDGES,
        "MGHBCH, trained on NIH-PD 0-22 y",
        "Fig. 5",
    ),
    TableSpec(
        "table3",
        "Table 3: replication cohort, trained on discovery 0-6 y",
        "0-6",
        True,
        metrics.YOUNG_AGE_EDGES,
        "MGHBCH, trained on NIH-PD 0-6 y",
        "",
    ),
)


def paper_rows(spec: TableSpec) -> dict[str, dict]:
    """The paper's rows of one table, labelled with the paper and its cohort, in `paper_table`'s format."""
    labels = metrics.age_group_labels(spec.edges)
    return {
        f"paper ({PAPER}, {spec.paper_set}): {PAPER_MODEL_NAMES[model]}": {
            "mae": average,
            "age_groups": [{"label": label, "mae": mae} for label, mae in zip(labels, maes, strict=True)],
        }
        for model, (maes, average) in PAPER_MAE[spec.key].items()
    }


def epoch_seconds(history: Sequence[Mapping[str, str]]) -> float | None:
    """Median seconds of an epoch after the first (which also traces the graphs); None without one."""
    seconds = [float(row["seconds"]) for row in history[1:]] or [float(row["seconds"]) for row in history]
    return statistics.median(seconds) if seconds else None


def timing_table(timings: Sequence[Mapping]) -> str:
    """Our training times per model and setting, then the paper's, as a Markdown table."""
    lines = [
        "| Method | trained on | train scans | epochs | s per epoch (median) | training wall time |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for t in timings:
        per_epoch = report.EMPTY if t["epoch_seconds"] is None else f"{t['epoch_seconds']:.1f}"
        wall = f"{t['wall_seconds'] / 60:.1f} min" + (" (resumed: last session)" if t["resumed"] else "")
        lines.append(
            f"| ours: {t['model']} | {t['dataset']} {t['setting']} y | {t['num_train']} | {t['epochs']} | "
            f"{per_epoch} | {wall} |"
        )
    for model, hours in PAPER_TRAINING_HOURS.items():
        lines.append(
            f"| paper ({PAPER}, NVIDIA K80): {PAPER_MODEL_NAMES[model]} | NIH-PD (setting of Table 3) | "
            f"{report.EMPTY} | 60 | {report.EMPTY} | {hours:g} h |"
        )
    return "\n".join(lines) + "\n"


def time_ratio(timings: Sequence[Mapping], setting: str) -> str:
    """One sentence: resnet3d's training time over slice_lstm's in a setting, ours and the paper's."""
    wall = {t["model"]: t["wall_seconds"] for t in timings if t["setting"] == setting}
    paper = PAPER_TRAINING_HOURS["resnet3d"] / PAPER_TRAINING_HOURS["slice_lstm"]
    if not wall.get("slice_lstm") or "resnet3d" not in wall:
        return f"The paper's 3D-ResNet18 took {paper:.1f} times as long as 2D-ResNet18+LSTM."
    ours = wall["resnet3d"] / wall["slice_lstm"]
    return (
        f"resnet3d took {ours:.2f} times as long as slice_lstm to train here ({setting} y setting); "
        f"the paper's 3D-ResNet18 took {paper:.1f} times as long as its 2D-ResNet18+LSTM on a GPU."
    )


def write_experiment_report(
    out_dir: Path,
    cohort: str,
    context: Sequence[str],
    evaluations: Mapping[str, Mapping],
    timings: Sequence[Mapping],
) -> Path:
    """Writes OUT/report.md: the three tables with the paper's rows, CS figures, timing and ensembles.

    Args:
        out_dir: The experiment folder; every linked file lies below it.
        cohort: Our cohort's name, e.g. "synthetic_cohort/experiment"; labels our rows.
        context: Bullet lines saying what was run (datasets, sizes, preset, wall time).
        evaluations: Table key -> {"set": evaluated dataset:split, "compare_dir", "ensemble_dir"}.
        timings: One dict per trained run (model, setting, dataset, num_train, epochs,
            epoch_seconds, wall_seconds, resumed).

    Returns:
        The report's path.
    """
    parts = [
        f"# The paper's experiment (He et al., ISBI 2020) on {cohort}",
        "Rows labelled **paper** are the published numbers of He et al. 2020 on **NIH-PD** (discovery) "
        "and **MGHBCH** (replication). Rows labelled **ours** are this run on **"
        + cohort
        + "**. The data differ, so compare the patterns (which model wins where, how errors grow with "
        "age, what the unseen cohort costs), not the absolute values.",
        "## What was run\n\n" + "\n".join(f"- {line}" for line in context),
    ]
    for spec in TABLES:
        evaluation = evaluations[spec.key]
        summary = json.loads((Path(evaluation["ensemble_dir"]) / "metrics.json").read_text())
        ours = {f"ours ({evaluation['set']}): {label}": row for label, row in summary["models"].items()}
        cs_link = Path(evaluation["compare_dir"]).relative_to(out_dir) / "cs_curves.png"
        ensemble_link = Path(evaluation["ensemble_dir"]).relative_to(out_dir)
        figure = f"the paper's {spec.paper_figure}" if spec.paper_figure else "no figure in the paper"
        verdicts = [
            f"{e['ensemble']}: MAE {'' if e['beats_every_member'] else 'not '}lower than every member's "
            f"(best member {e['best_member']}, {_wilcoxon(e['wilcoxon'])})"
            for e in summary["ensembles"]
        ]
        parts += [
            f"## {spec.title}",
            "MAE (years) per age group; Average is the overall per-subject MAE. The n row counts our scans.",
            report.paper_table({**paper_rows(spec), **ours}).rstrip("\n"),
            "2D+3D ensembles (the paper's closing proposal): " + "; ".join(verdicts) + ".",
            f"![CS curves, {spec.title.split(':')[0]} ({figure})]({cs_link.as_posix()})",
            f"Per-model report with paired Wilcoxon tests: [{cs_link.parent.as_posix()}/report.md]"
            f"({cs_link.parent.as_posix()}/report.md); ensembles: [{ensemble_link.as_posix()}/report.md]"
            f"({ensemble_link.as_posix()}/report.md).",
        ]
    parts += [
        "## Training time",
        timing_table(timings).rstrip("\n"),
        time_ratio(timings, "0-6")
        + " The paper gives its times with Table 3 and does not say which training they measure; "
        "ours are wall times on this machine, each from building the model to the last epoch.",
    ]
    path = out_dir / report.REPORT_NAME
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return path


def _wilcoxon(test: Mapping) -> str:
    """The ensemble's paired test against its best member, in a few words."""
    if test["p_value"] is None:
        return "the same errors, no test"
    return f"Wilcoxon p = {test['p_value']:.3g}"
