"""Times `python -m brainage_tf.explain` per scan: saliency, occlusion, NIfTIs and figures.

    python benchmarks/explain_speed.py --model runs/X/export/1 SCAN [SCAN ...] [--samples 32]

The export is loaded once (not timed); preprocessing runs in a worker process
ahead of the explanation and is not counted (benchmarks/preprocess_scan.py times
it). The first scan also traces the model's gradient, so the table gives it apart
from the median of the others.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
from pathlib import Path

from brainage_tf.explanation.saliency import METHODS, SaliencySettings
from brainage_tf.serving.explanations import SUMMARY_CSV, explain_items, slab_settings
from brainage_tf.serving.exported_model import ExportedModel
from brainage_tf.serving.scans import ScanItem


def main() -> None:
    """Explains every scan into a temporary folder and prints the seconds of each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("scans", nargs="+")
    parser.add_argument("--samples", type=int, default=SaliencySettings().samples)
    parser.add_argument("--method", choices=METHODS, default=SaliencySettings().method)
    args = parser.parse_args()
    model = ExportedModel(args.model)
    settings = SaliencySettings(args.method, args.samples)
    with tempfile.TemporaryDirectory() as out:
        explain_items(
            model, [ScanItem(str(Path(scan).resolve())) for scan in args.scans], settings,
            slab_settings(model.metadata, None, None), Path(out), workers=1,
        )  # fmt: skip
        with open(Path(out) / SUMMARY_CSV, newline="") as handle:
            seconds = [float(row["seconds"]) for row in csv.DictReader(handle) if row["status"] == "ok"]
    print(f"{model.metadata['model']} on grid {model.metadata['grid']}, {settings.describe()}")
    print(f"first scan (traces the gradient): {seconds[0]:.1f} s")
    if len(seconds) > 1:
        print(f"median of the other {len(seconds) - 1}: {statistics.median(seconds[1:]):.1f} s per scan")


if __name__ == "__main__":
    main()
