"""Two paper experiments side by side: `python -m pipelines.experiment_compare A B [--names NAME_A NAME_B]`.

Two folders of `python -m pipelines.paper_experiment` that differ in one thing (a preprocessing
setting, a cohort build) and were trained with the same seeds: for each table, setting and
model of both, the MAE of each (mean ± SD over the seeds) and the difference B - A seed by
seed. Same seed means the same weight initialisation and batch order, and both experiments
split the subjects by the same hash, so the per-seed difference is paired; with few seeds,
read its sign across seeds, not its mean alone. docs/preprocessing.md compares skull
stripping this way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from brainage_tf.errors import UsageError

METRICS_NAME = "metrics.json"


def read_metrics(folder: Path) -> dict:
    """The metrics.json of a finished experiment folder; UsageError naming the folder if it has none."""
    path = folder / METRICS_NAME
    if not path.is_file():
        raise UsageError(f"{folder} has no {METRICS_NAME}: not a finished pipelines.paper_experiment folder.")
    return json.loads(path.read_text())


def compare(first: dict, second: dict) -> list[dict]:
    """One row per (table, setting, model) in both experiments' metrics, with the per-seed differences.

    Raises:
        UsageError: the experiments were trained with different seeds.
    """
    if first["seeds"] != second["seeds"]:
        raise UsageError(f"the experiments have different seeds: {first['seeds']} and {second['seeds']}.")
    rows = []
    for key, table in first["tables"].items():
        other = second["tables"].get(key, {"settings": {}})
        for setting, entry in table["settings"].items():
            models = other["settings"].get(setting, {"models": {}})["models"]
            for model, metrics in entry["models"].items():
                if model not in models:
                    continue
                a, b = metrics["mae"]["per_seed"], models[model]["mae"]["per_seed"]
                rows.append(
                    dict(
                        table=table["title"].split(":")[0], setting=setting, model=model,
                        first=a, second=b, differences=[y - x for x, y in zip(a, b, strict=True)],
                    )
                )  # fmt: skip
    return rows


def _mean_sd(values: Sequence[float]) -> str:
    spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.2f}{spread}"


def markdown(rows: list[dict], names: tuple[str, str]) -> str:
    """The rows as a Markdown table."""
    lines = [
        f"| table | trained on | model | MAE {names[0]} (y) | MAE {names[1]} (y) | "
        f"{names[1]} - {names[0]}, mean (per seed) |",
        "|---|---|---|---:|---:|---|",
    ]
    for row in rows:
        per_seed = ", ".join(f"{value:+.2f}" for value in row["differences"])
        lines.append(
            f"| {row['table']} | {row['setting']} | {row['model']} | {_mean_sd(row['first'])} | "
            f"{_mean_sd(row['second'])} | {statistics.fmean(row['differences']):+.2f} ({per_seed}) |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.experiment_compare", description=__doc__)
    parser.add_argument("first", type=Path, help="Experiment folder A.")
    parser.add_argument("second", type=Path, help="Experiment folder B (differences are B - A).")
    parser.add_argument("--names", nargs=2, metavar=("NAME_A", "NAME_B"), help="Column names (folder names).")
    args = parser.parse_args(argv)
    names = tuple(args.names or (args.first.name, args.second.name))
    try:
        rows = compare(read_metrics(args.first), read_metrics(args.second))
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    print(markdown(rows, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
