"""The report of `python -m pipelines.paper_experiment`: the paper's tables, CS figures, timing, beside ours.

He et al. (ISBI 2020) report MAE per age group in three tables and the cumulative score
in two figures; this module holds their published numbers (typed in from the paper, once),
the experiment's training settings and tables, and writes `report.md` with the paper's rows
and ours in one table each, clearly labelled: the paper's on NIH-PD (discovery) and MGHBCH
(replication), ours on the named cohort, each cell the mean ± SD over the seeds
(`pipelines.paper_stats`), and `metrics.json` with every seed's figures. Nothing here
imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from brainage_tf.defaults import MAX_AGE_YEARS, MIN_AGE_YEARS, YOUNG_MAX_AGE_YEARS
from brainage_tf.evaluation import metrics, plots, report
from brainage_tf.training.config import TrainConfig
from pipelines import paper_stats

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
# The experiment's summary beside report.md: every table's figures per seed, their mean and SD, the tests.
SUMMARY_NAME = "metrics.json"


@dataclasses.dataclass(frozen=True)
class Setting:
    """One training setting: the experiment trains every paper model in it, once per seed.

    Attributes:
        name: Short name, in run folders (`runs/seed0/slice_lstm_0-6`) and in `TableSpec.settings`.
        description: What it trained on, as the tables and the timing rows say it.
        changes: The `TrainConfig` fields it sets on the experiment's base config.
        parent: The setting whose run (same model and seed) it fine-tunes (None: from scratch).
    """

    name: str
    description: str
    changes: Mapping[str, object]
    parent: str | None = None


_FINETUNE = TrainConfig.finetune()


# The paper's two training settings (the discovery cohort's whole range, and 0-6 y: Table 3), and
# the row the paper could not have: its 0-22 y model fine-tuned on 0-6 y with the finetune preset.
# Trained in this order (a parent before its child); each is trained for every model and seed.
SETTINGS = (
    Setting("0-22", "0-22 y", {"min_age": MIN_AGE_YEARS, "max_age": MAX_AGE_YEARS}),
    Setting("0-6", "0-6 y", {"min_age": MIN_AGE_YEARS, "max_age": YOUNG_MAX_AGE_YEARS}),
    Setting(
        "0-22-ft-0-6",
        "0-22 y, fine-tuned on 0-6 y",
        {
            "min_age": MIN_AGE_YEARS,
            "max_age": YOUNG_MAX_AGE_YEARS,
            "preset": _FINETUNE.preset,
            "epochs": _FINETUNE.epochs,
            "learning_rate": _FINETUNE.learning_rate,
            "halve_every_epochs": _FINETUNE.halve_every_epochs,
        },
        parent="0-22",
    ),
)
SETTING_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """One of the paper's three evaluations.

    Attributes:
        key: "table1", "table2" or "table3" (also the output folder's name).
        title: The paper's caption, shortened.
        settings: The training settings whose runs it evaluates, the paper's first; with more
            than one, our rows and sentences name the setting.
        on_replication: Evaluated on the replication cohort (else the discovery test split).
        edges: The paper's age groups of that table.
        paper_set: Where the paper's numbers come from.
        paper_figure: The paper's CS figure of that evaluation ("" when it has none).
    """

    key: str
    title: str
    settings: tuple[str, ...]
    on_replication: bool
    edges: tuple[float, ...]
    paper_set: str
    paper_figure: str


TABLES = (
    TableSpec(
        "table1",
        "Table 1: discovery test split, trained on discovery 0-22 y",
        ("0-22",),
        False,
        metrics.PAPER_AGE_EDGES,
        "NIH-PD test split",
        "Fig. 4",
    ),
    TableSpec(
        "table2",
        "Table 2: replication cohort, trained on discovery 0-22 y",
        ("0-22",),
        True,
        metrics.YOUNG_AGE_EDGES,
        "MGHBCH, trained on NIH-PD 0-22 y",
        "Fig. 5",
    ),
    TableSpec(
        "table3",
        "Table 3: replication cohort, trained on discovery 0-6 y (and the 0-22 y model fine-tuned on it)",
        ("0-6", "0-22-ft-0-6"),
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


def timing_groups(timings: Sequence[Mapping]) -> list[list[Mapping]]:
    """The runs' timings grouped by (model, setting), one entry per seed, in order of first appearance."""
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for t in timings:
        groups.setdefault((t["model"], t["setting"]), []).append(t)
    return list(groups.values())


def timing_table(timings: Sequence[Mapping]) -> str:
    """Our training times per model and setting (mean ± SD over seeds), then the paper's, as Markdown."""
    lines = [
        "| Method | trained on | train scans | epochs | s per epoch (median) | training wall time |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for runs in timing_groups(timings):
        first, resumed = runs[0], sum(bool(t["resumed"]) for t in runs)
        per_epoch = paper_stats.cell([t["epoch_seconds"] for t in runs], 1)
        wall = paper_stats.cell([t["wall_seconds"] / 60 for t in runs], 1) + " min"
        if resumed:
            wall += " (resumed: last session)" if len(runs) == 1 else f" ({resumed} resumed: last session)"
        trained_on = f"{first['dataset']} {SETTING_BY_NAME[first['setting']].description}"
        scans, epochs = (paper_stats.count([t[key] for t in runs]) for key in ("num_train", "epochs"))
        lines.append(f"| ours: {first['model']} | {trained_on} | {scans} | {epochs} | {per_epoch} | {wall} |")
    for model, hours in PAPER_TRAINING_HOURS.items():
        lines.append(
            f"| paper ({PAPER}, NVIDIA K80): {PAPER_MODEL_NAMES[model]} | NIH-PD (setting of Table 3) | "
            f"{report.EMPTY} | 60 | {report.EMPTY} | {hours:g} h |"
        )
    return "\n".join(lines) + "\n"


def time_ratio(timings: Sequence[Mapping], setting: str) -> str:
    """One sentence: resnet3d's training time over slice_lstm's in a setting (seeds' mean), the paper's."""
    walls: dict[str, list[float]] = {}
    for t in timings:
        if t["setting"] == setting:
            walls.setdefault(t["model"], []).append(t["wall_seconds"])
    paper = PAPER_TRAINING_HOURS["resnet3d"] / PAPER_TRAINING_HOURS["slice_lstm"]
    if not sum(walls.get("slice_lstm", [])) or "resnet3d" not in walls:
        return f"The paper's 3D-ResNet18 took {paper:.1f} times as long as 2D-ResNet18+LSTM."
    mean = {model: sum(values) / len(values) for model, values in walls.items()}
    seeds = len(walls["resnet3d"])
    where = f"{SETTING_BY_NAME[setting].description} setting" + (
        f", mean of {seeds} seeds" if seeds > 1 else ""
    )
    return (
        f"resnet3d took {mean['resnet3d'] / mean['slice_lstm']:.2f} times as long as slice_lstm to train "
        f"here ({where}); "
        f"the paper's 3D-ResNet18 took {paper:.1f} times as long as its 2D-ResNet18+LSTM on a GPU."
    )


def read_seeds(runs: Sequence[Mapping]) -> list[dict]:
    """Per seed of one setting: rows, ensemble verdicts and paired predictions, from its ensemble folder."""
    seeds = []
    for run in runs:
        folder = Path(run["ensemble_dir"])
        summary = json.loads((folder / "metrics.json").read_text())
        # Subject ids as text ("001" stays "001"); an empty cell (a non-finite prediction) is NaN.
        predictions = pd.read_csv(
            folder / "predictions.csv", dtype={"subject_id": str}, keep_default_na=False, na_values=[""]
        )
        seeds.append({"seed": run["seed"], "predictions": predictions, **summary})
        seeds[-1]["biomarkers"] = member_biomarkers(summary["members"])
    return seeds


def member_biomarkers(members: Mapping[str, Mapping]) -> dict[str, dict]:
    """Each member's ground-truth and longitudinal figures, from its own evaluation of all its scans."""
    found = {}
    for label, member in members.items():
        path = Path(member.get("eval_dir", "")) / "metrics.json"
        if member.get("eval_dir") and path.is_file():
            own = json.loads(path.read_text())
            found[label] = {key: own[key] for key in ("truth", "longitudinal") if key in own}
    return found


def setting_summary(
    out_dir: Path, runs: Sequence[Mapping], seeds: Sequence[Mapping], rows: Mapping, comparison: dict
) -> dict:
    """One setting's part of metrics.json: its folders, each row's figures per seed, mean and SD, tests."""
    ensembles: dict[str, list] = {}
    for seed in seeds:
        for result in seed["ensembles"]:
            ensembles.setdefault(result["ensemble"], []).append({"seed": seed["seed"], **result})
    return {
        "runs": [
            {key: value if key == "seed" else _relative(value, out_dir) for key, value in run.items()}
            for run in runs
        ],
        "models": {
            label: {
                "n": row["n"],
                "mae": paper_stats.mean_sd(row["mae"]),
                "age_groups": [
                    {"label": g["label"], "n": g["n"], "mae": paper_stats.mean_sd(g["mae"])}
                    for g in row["age_groups"]
                ],
            }
            for label, row in rows.items()
        },
        "comparison": comparison,
        "ensembles": ensembles,
    }


def table_section(out_dir: Path, spec: TableSpec, evaluation: Mapping) -> tuple[list[str], dict]:
    """One table's part of report.md (table, 2D-vs-3D tests, ensembles, CS figure) and of metrics.json."""
    several = len(spec.settings) > 1
    rows = paper_stats.seed_rows([paper_rows(spec)])
    tests, verdicts, curves, summary, links = [], [], {}, {}, {"compare_dir": [], "ensemble_dir": []}
    biomarkers = {}
    for name, runs in evaluation["settings"].items():
        description = SETTING_BY_NAME[name].description
        suffix = f", trained {description}" if several else ""
        seeds = read_seeds(runs)
        ours = paper_stats.seed_rows([seed["models"] for seed in seeds])
        rows.update({f"ours ({evaluation['set']}): {label}{suffix}": row for label, row in ours.items()})
        for model in PAPER_MODELS:
            percent = np.mean([seed["models"][model]["cs"]["percent"] for seed in seeds], axis=0)
            curves[model + suffix] = {"alpha": seeds[0]["models"][model]["cs"]["alpha"], "percent": percent}
        comparison = paper_stats.model_comparison(seeds, *PAPER_MODELS)
        tests.append(f"2D against 3D{suffix}: " + paper_stats.comparison_sentence(comparison))
        verdicts += [
            f"trained {description}, " * several + line for line in paper_stats.ensemble_verdicts(seeds)
        ]
        for key, paths in links.items():
            paths += [_relative(run[key], out_dir) for run in runs]
        summary[name] = setting_summary(out_dir, runs, seeds, ours, comparison)
        summary[name]["biomarkers"] = {model: [seed["biomarkers"].get(model, {}) for seed in seeds]
                                       for model in PAPER_MODELS}  # fmt: skip
        biomarkers.update({
            f"ours ({evaluation['set']}): {model}{suffix}": per_seed
            for model, per_seed in summary[name]["biomarkers"].items()
        })  # fmt: skip
    k = len(next(iter(evaluation["settings"].values())))
    figure_path = out_dir / spec.key / "cs_curves.png"
    plots.plot_cs_curves(curves, figure_path, evaluation["set"] + (f", mean over {k} seeds" if k > 1 else ""))
    figure = f"the paper's {spec.paper_figure}" if spec.paper_figure else "no figure in the paper"
    averaged = f"; ours mean of {k} seeds" if k > 1 else ""
    reports = {
        key: ", ".join(f"[{path}/report.md]({path}/report.md)" for path in paths)
        for key, paths in links.items()
    }
    parts = [
        f"## {spec.title}",
        "MAE (years) per age group; Average is the overall per-subject MAE. The n row counts our scans."
        + (f" Our cells are the mean ± SD (sample SD) over {k} training seeds." if k > 1 else ""),
        paper_stats.seed_table(rows).rstrip("\n"),
        *tests,
        "2D+3D ensembles (the paper's closing proposal): " + "; ".join(verdicts) + ".",
        *paper_stats.biomarker_sections(biomarkers),
        f"![CS curves, {spec.title.split(':')[0]} ({figure}{averaged})]"
        f"({figure_path.relative_to(out_dir).as_posix()})",
        f"Per-model report with paired Wilcoxon tests: {reports['compare_dir']}; "
        f"ensembles: {reports['ensemble_dir']}.",
    ]
    return parts, {"title": spec.title, "set": evaluation["set"], "settings": summary}


def write_experiment_report(
    out_dir: Path,
    cohort: str,
    context: Sequence[str],
    evaluations: Mapping[str, Mapping],
    timings: Sequence[Mapping],
) -> Path:
    """Writes OUT/report.md (tables, CS figures, timing, ensembles) and OUT/metrics.json (per seed).

    Args:
        out_dir: The experiment folder; every linked file lies below it.
        cohort: Our cohort's name, e.g. "synthetic_cohort/experiment"; labels our rows.
        context: Bullet lines saying what was run (datasets, sizes, preset, seeds, wall time).
        evaluations: Table key -> {"set": evaluated dataset:split, "settings": setting name ->
            one {"seed", "compare_dir", "ensemble_dir"} per seed, the same seeds in each}.
        timings: One dict per trained run (model, setting, seed, dataset, num_train, epochs,
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
    tables = {}
    for spec in TABLES:
        section, tables[spec.key] = table_section(out_dir, spec, evaluations[spec.key])
        parts += section
    parts += [
        "## Training time",
        timing_table(timings).rstrip("\n"),
        time_ratio(timings, "0-6")
        + " The paper gives its times with Table 3 and does not say which training they measure; "
        "ours are wall times on this machine, each from building the model to the last epoch.",
    ]
    path = out_dir / report.REPORT_NAME
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    timing = [
        {
            "model": runs[0]["model"],
            "setting": runs[0]["setting"],
            "per_seed": list(runs),
            "wall_seconds": paper_stats.mean_sd([t["wall_seconds"] for t in runs]),
            "epoch_seconds": paper_stats.mean_sd([t["epoch_seconds"] for t in runs]),
        }
        for runs in timing_groups(timings)
    ]
    seeds = sorted({t["seed"] for t in timings})
    summary = {"seeds": seeds, "tables": tables, "timing": timing}
    (out_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + "\n")
    return path


def _relative(path: str | Path, out_dir: Path) -> str:
    """A path below the experiment folder, relative to it (the report and summary move with the folder)."""
    return Path(path).relative_to(out_dir).as_posix()
