"""What an evaluation spends on the run's calibration: fitted, reused, and the forward pass it replaced.

    python benchmarks/evaluation_calibration.py RUN_DIR [RUN_DIR ...]

For each finished run (a copy of it is used, so the run's own calibration.json is untouched),
in one process with the model loaded once:

- `forward pass over train`: the model over every training scan, which each evaluation ran
  before the out-of-distribution ranges were read from the stored volumes (the cost removed);
- `fit`: `run_calibration.calibrate` with no calibration on disk (the training split's
  statistics without the model, the validation predictions, the fits);
- `reused`: the same call once the calibration is current (fingerprints only).

Prints one table row per run: seconds of each, and the scans each pass reads.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from brainage_tf import data
from brainage_tf.evaluation import inference
from brainage_tf.evaluation.run_calibration import calibrate
from brainage_tf.training.run_directory import RunDirectory
from brainage_tf.training.trainer import selection_of

# Files of a run that calibration reads; the copy holds only these.
RUN_FILES = ("config.json", "best_model.keras", "history.csv", "results.json")


def seconds(function) -> tuple[float, object]:
    """Wall seconds of one call, and its result."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def measure(run_dir: Path, work: Path) -> dict:
    """The three timings of one run, on a copy of its calibration inputs in `work`."""
    copy = work / run_dir.name
    copy.mkdir()
    for name in RUN_FILES:
        if (run_dir / name).is_file():
            shutil.copy(run_dir / name, copy / name)
    run = RunDirectory(copy)
    config = run.read_config()
    model = inference.load_run_model(run, config)
    source = data.tfds_source(config.dataset, config.train_split, config.data_dir)
    selection = selection_of(config)
    quiet = lambda line: None  # noqa: E731
    forward, trained = seconds(lambda: inference.predict(model, source, selection, "train"))
    fit, _ = seconds(lambda: calibrate(run, config, lambda: model, log=quiet))
    reused, _ = seconds(lambda: calibrate(run, config, lambda: model, log=quiet))
    return dict(run=str(run_dir), train_scans=len(trained), forward=forward, fit=fit, reused=reused)


def main() -> int:
    """Measures every run given and prints the table."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("runs", nargs="+", type=Path, help="Finished run directories.")
    args = parser.parse_args()
    print("| run | train scans | forward pass over train (s, before) | fit (s) | reused (s) |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as work:
        for run_dir in args.runs:
            row = measure(run_dir, Path(work))
            print(f"| {row['run']} | {row['train_scans']} | {row['forward']:.1f} | {row['fit']:.1f} | "
                  f"{row['reused']:.2f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
