"""The learning curve's pieces without TensorFlow: subject draws, scores, the table, the plot.

`python -m pipelines.site_adaptation` asks, for a site with N labelled scans, which
adaptation to use. Subjects, not scans, are the unit of every draw: per seed, the site's
subjects are shuffled once; the first ones are held out for scoring, and the training sets
of every N are nested prefixes of the rest, so a larger N only adds subjects.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from brainage_tf.evaluation import plots, report
from pipelines import paper_stats

# Method key -> its label in the table and the plot, in the order they are run and shown.
METHODS = {
    "none": "no adaptation (the parent)",
    "recalibration": "recalibration only (calibrate)",
    "finetune_encoder": "fine-tuning, encoder frozen (lr 3e-4)",
    "finetune_all": "fine-tuning everything",
    "scratch": "training from scratch on the N",
}
REPORT_NAME = "report.md"
SUMMARY_NAME = "metrics.json"
PLOT_NAME = "learning_curve.png"


@dataclasses.dataclass(frozen=True)
class SubjectDraw:
    """One seed's split of a site's subjects.

    Attributes:
        held_out: Subjects every method is scored on; none trains or calibrates on them.
        pool: The others, in drawn order; the first N are the training set of size N.
    """

    held_out: tuple[str, ...]
    pool: tuple[str, ...]

    def first(self, count: int) -> tuple[str, ...]:
        """The N labelled site subjects of the learning curve's point N."""
        return self.pool[:count]


def draw_subjects(subjects: Sequence[str], largest: int, seed: int, min_held_out: int) -> SubjectDraw:
    """Shuffles the site's subjects with the seed; holds out all but the largest training set.

    Raises:
        ValueError: Fewer than `largest + min_held_out` subjects.
    """
    unique = sorted(set(subjects))
    if len(unique) < largest + min_held_out:
        raise ValueError(
            f"the site has {len(unique)} subjects; N up to {largest} needs at least "
            f"{largest + min_held_out} ({min_held_out} held out)"
        )
    order = [unique[index] for index in np.random.default_rng(seed).permutation(len(unique))]
    held = len(unique) - largest
    return SubjectDraw(tuple(order[:held]), tuple(order[held:]))


def score(
    ages: Sequence[float], served: Sequence[float], low: Sequence[float] | None, high: Sequence[float] | None
) -> dict:
    """MAE of the served ages and the coverage and mean half-width of their intervals (None: no interval)."""
    ages, served = np.asarray(ages, float), np.asarray(served, float)
    result = {"n": int(ages.size), "mae": float(np.mean(np.abs(served - ages)))}
    if low is None or high is None:
        return {**result, "coverage": None, "half_width": None}
    low, high = np.asarray(low, float), np.asarray(high, float)
    width = float(np.mean(high - low) / 2)
    return {
        **result,
        "coverage": float(np.mean((ages >= low) & (ages <= high))),
        "half_width": width if math.isfinite(width) else None,
    }


def curve(rows: Sequence[Mapping], sizes: Sequence[int], key: str) -> dict[str, list[dict]]:
    """Method -> per N, `paper_stats.mean_sd` of one figure over the seeds' rows (None where absent)."""
    return {
        method: [
            paper_stats.mean_sd([
                row[key] for row in rows if row["method"] == method and row["n_train"] == size
            ])
            for size in sizes
        ]
        for method in METHODS
    }  # fmt: skip


def table(rows: Sequence[Mapping], sizes: Sequence[int], key: str, digits: int = 2) -> str:
    """Markdown: one row per method, one column per N, each cell the mean ± SD over the seeds."""
    lines = ["| method | " + " | ".join(f"N = {size}" for size in sizes) + " |"]
    lines.append("|---|" + "---:|" * len(sizes))
    for method, label in METHODS.items():
        cells = []
        for size in sizes:
            values = [row[key] for row in rows if row["method"] == method and row["n_train"] == size]
            cells.append(paper_stats.cell(values, digits) if values else report.EMPTY)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curve(rows: Sequence[Mapping], sizes: Sequence[int], path: Path, title: str) -> Path:
    """MAE against N (log axis), one line per method, the seeds' SD as error bars."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(plots.STYLE):
        figure = Figure(figsize=(6.4, 4.8), layout="constrained")
        axes = figure.subplots()
        for index, (method, points) in enumerate(curve(rows, sizes, "mae").items()):
            kept = [(size, p["mean"], p["sd"] or 0.0) for size, p in zip(sizes, points, strict=True)
                    if p["mean"] is not None]  # fmt: skip
            if kept:
                x, mean, sd = (np.array(part) for part in zip(*kept, strict=True))
                # Marker and dash vary too, so the lines stay apart in greyscale prints.
                style = {"marker": "os^Dv"[index], "linestyle": ("-", "--", "-.", ":", "-")[index]}
                axes.errorbar(x, mean, yerr=sd, capsize=3, label=METHODS[method], **style)
        axes.set_xscale("log")
        axes.set_xticks(list(sizes), [str(size) for size in sizes])
        axes.set_xticks([], minor=True)  # a log axis labels its minor ticks (6 x 10^0) otherwise
        axes.set_xlabel("N labelled site subjects")
        axes.set_ylabel("MAE on held-out site subjects (years)")
        axes.set_title(title)
        axes.grid(True, alpha=0.4)
        axes.legend(fontsize=8)
    return plots.save_figure(figure, path)


def write_report(out: Path, plan: Mapping, rows: Sequence[Mapping], context: Sequence[str]) -> Path:
    """Writes OUT/report.md (MAE and coverage tables, the plot) and OUT/metrics.json (every row)."""
    sizes = plan["sizes"]
    seeds = sorted({row["seed"] for row in rows})
    over = f"mean ± SD over {len(seeds)} seeds" if len(seeds) > 1 else f"seed {seeds[0]}"
    figure = plot_curve(rows, sizes, out / PLOT_NAME, f"{plan['site']}, {over}")
    level = f"{plan['level']:.0%}"
    parts = [
        f"# Adapting {plan['model']} to a new site: the learning curve on {plan['site']}",
        "## What was run\n\n" + "\n".join(f"- {line}" for line in context),
        f"## MAE on the held-out site subjects (years, {over})",
        table(rows, sizes, "mae").rstrip("\n"),
        f"![MAE against N]({figure.relative_to(out).as_posix()})",
        f"## Coverage of the {level} intervals on the held-out site subjects ({over})",
        "– : the method serves no finite interval. A fine-tuned or from-scratch model trains on "
        "the N subjects, so none is left to calibrate its intervals on; recalibration needs "
        f"{plan['min_controls']} subjects for a finite {level} interval.",
        table(rows, sizes, "coverage").rstrip("\n"),
        "## Mean interval half-width (years)",
        table(rows, sizes, "half_width").rstrip("\n"),
    ]
    path = out / REPORT_NAME
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    summary = {
        "plan": dict(plan),
        "mae": curve(rows, sizes, "mae"),
        "coverage": curve(rows, sizes, "coverage"),
        "rows": list(rows),
    }
    (out / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + "\n")
    return path
