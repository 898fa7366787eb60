"""Prints the three saliency sanity figures (Adebayo et al. 2018) and explain's seconds per scan for a run.

    python benchmarks/explain_sanity.py --run runs/slice_lstm_X SCAN [SCAN ...]

For each scan, preprocessed as the run's export would:

* model randomisation: Spearman correlation of |map| (SmoothGrad or --method) between the run's model and
  the same architecture re-initialised, next to the correlation between two noise seeds
  of the trained model (the method's own repeatability) and between |map| and |volume|;
* planted signal: not per scan (it needs a model built to depend on one region; see
  brainage_tf/explanation/sanity_test.py);
* occlusion consistency: age change of occluding the top quarter of slabs together
  against the mean of 20 random sets of as many slabs;
* seconds of the saliency map and of the slab occlusion (the model already loaded).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from brainage_tf.evaluation.inference import load_run_model
from brainage_tf.explanation import occlusion, sanity
from brainage_tf.explanation.saliency import METHODS, SaliencySettings, keras_age_function, saliency_map
from brainage_tf.preprocessing import GRIDS, preprocess_scan
from brainage_tf.preprocessing_record import preprocess_config_from_record
from brainage_tf.serving.explanations import slab_settings
from brainage_tf.training.run_directory import RunDirectory


def main() -> None:
    """Parses arguments and prints one row per scan and the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("scans", nargs="+")
    parser.add_argument("--method", choices=METHODS, default=SaliencySettings().method)
    args = parser.parse_args()
    run = RunDirectory(args.run)
    config = run.read_config()
    model = load_run_model(run, config)
    grid_shape = tuple(int(n) for n in model.input_shape[1:4])
    # As the run's export would: the preprocessing its dataset recorded, copied into config.json.
    prep = preprocess_config_from_record(config.preprocessing)
    grid = prep.grid
    # The slabs explain would occlude for the run's export: its model's own, or the defaults.
    slab_axis, slab_size = slab_settings({**config.to_json(), "grid_shape": list(grid_shape)}, None, None)
    trained, randomised = keras_age_function(model), keras_age_function(sanity.reinitialised(model))
    settings = SaliencySettings(method=args.method)
    print(f"{config.model} on grid {grid} {grid_shape}, {settings.describe()}")
    headers = ("rho rand", "rho seed", "rho vol", "top Δ", "rand Δ", "sal s", "occ s")
    print(f"{'scan':<16} " + " ".join(f"{header:>8}" for header in headers))
    rows = []
    for path in args.scans:
        volume = preprocess_scan(path, prep).volume
        saliency_map(
            trained, volume, SaliencySettings(args.method, samples=settings.batch_size)
        )  # traces once per shape
        start = time.perf_counter()
        trained_map = saliency_map(trained, volume, settings)
        seconds_map = time.perf_counter() - start
        start = time.perf_counter()
        table = occlusion.slab_importance(trained, volume, slab_axis, slab_size, GRIDS[grid].affine)
        seconds_occlusion = time.perf_counter() - start
        random_map = saliency_map(randomised, volume, settings)
        second_seed = saliency_map(trained, volume, SaliencySettings(args.method, seed=1))
        top = max(1, len(table) // 4)
        consistency = sanity.occlusion_consistency(
            trained, volume, table["importance"].to_numpy(), slab_axis, slab_size, top
        )
        row = (
            sanity.rank_correlation(trained_map, random_map),
            sanity.rank_correlation(trained_map, second_seed),
            sanity.rank_correlation(trained_map, volume),
            consistency["top_change"],
            consistency["random_mean_change"],
            seconds_map,
            seconds_occlusion,
        )
        rows.append(row)
        name = Path(path).name.split(".")[0][:16]
        print(f"{name:<16} " + " ".join(f"{value:>8.3f}" for value in row))
    medians = np.median(np.array(rows), axis=0)
    print(f"{'median':<16} " + " ".join(f"{value:>8.3f}" for value in medians))


if __name__ == "__main__":
    main()
