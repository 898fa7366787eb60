"""The measurements of `benchmarks/run.py`, one function per section; each returns JSON-ready dicts.

Every timing goes through `timing.time_calls`; training steps run in their own
process (`train_step.py`), one per configuration, so each has its own peak RSS.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from timing import matmul_gflops, time_calls

from brainage_tf.preprocessing import GRIDS

HERE = Path(__file__).resolve().parent
PAPER_SHAPE = GRIDS["paper"].shape
# A configuration or a build that takes longer has hung.
PROCESS_TIMEOUT_S = 900


def matmul_ceilings(size: int, calls: int) -> dict:
    """GFLOP/s of a square float32 and bfloat16 matmul in TensorFlow (median of `calls`)."""
    return dict(
        matmul_size=size,
        float32_gflops=matmul_gflops("tf", "float32", size, calls),
        bfloat16_gflops=matmul_gflops("tf", "bfloat16", size, calls),
    )


def forward_gflops(model_name: str) -> dict:
    """Forward GFLOPs per volume on the paper grid: counted from the layers, and by the TF profiler."""
    from flops import analytic_gflops, profiler_gflops

    from brainage_tf.models import build_model

    model = build_model(model_name, PAPER_SHAPE)
    return dict(forward_gflops=analytic_gflops(model), profiler_gflops=profiler_gflops(model))


def train_step_process(framework: str, model: str, precision: str, steps: int) -> dict:
    """Runs `train_step.py` for one configuration in a fresh process; returns its JSON result."""
    command = [sys.executable, str(HERE / "train_step.py"), "--framework", framework, "--model", model]
    command += ["--precision", precision, "--grid", "paper", "--steps", str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def training(models, precisions, frameworks, steps: int, rounds: int, log) -> list[dict]:
    """Every configuration `rounds` times, ours and PyTorch alternating; medians over rounds.

    The TF profiler cross-checks the analytic FLOP count once per model.
    """
    gflops = {model: forward_gflops(model) for model in models}
    runs: dict[tuple, list[dict]] = {}
    for round_index in range(rounds):
        for model in models:
            for precision in precisions:
                for framework in frameworks:
                    result = train_step_process(framework, model, precision, steps)
                    log(
                        f"  round {round_index + 1}/{rounds} {framework:<5} {model:<10} {precision:<14} "
                        f"first {result['first']:.2f} s, median {result['median']:.3f} s/step, "
                        f"{result['peak_rss_mb']:.0f} MB"
                    )
                    runs.setdefault((framework, model, precision), []).append(result)
    rows = []
    for results in runs.values():
        row = {key: value for key, value in results[0].items() if key not in ("first", "median", "calls")}
        row.update(gflops[row["model"]])
        row.update(
            step_s=float(np.median([r["median"] for r in results])),
            first_step_s=float(np.median([r["first"] for r in results])),
            step_s_per_round=[r["median"] for r in results],
            peak_rss_mb=max(r["peak_rss_mb"] for r in results),
            steps=steps,
            rounds=rounds,
        )
        rows.append(row)
    return rows


def export_untrained(model: str, precision: str, work_dir: Path, registration: str = "none") -> Path:
    """Exports a freshly initialised model on the paper grid through `export_run` (as a run would)."""
    from brainage_tf.models import build_model
    from brainage_tf.preprocessing import PreprocessConfig
    from brainage_tf.preprocessing_record import preprocessing_record
    from brainage_tf.serving import export
    from brainage_tf.training.config import TrainConfig
    from brainage_tf.training.run_directory import RunDirectory

    # The record training would copy from synthetic_cohort/paper, so predict can preprocess for it.
    record = preprocessing_record(PreprocessConfig(grid="paper", registration=registration))
    config = TrainConfig.paper().replace(
        model=model, dataset="synthetic_cohort/paper", precision=precision, preprocessing=record
    )
    run = RunDirectory(work_dir / f"run_{model}_{precision}_{registration}")
    run.start(config, resume=False)
    run.save_model(build_model(volume_shape=PAPER_SHAPE, **config.model_arguments()))
    return export.export_run(run.path)


def serving(export_dir: Path, batches, calls: int) -> list[dict]:
    """Seconds per volume of the export's serving_default at each batch size."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    rows = []
    for batch in batches:
        volumes = tf.constant(np.random.default_rng(0).standard_normal((batch, *PAPER_SHAPE)), tf.float32)
        timing = time_calls(lambda volumes=volumes: serve(volume=volumes)["predicted_age"].numpy(), calls)
        rows.append(dict(batch=batch, s_per_volume=timing.median / batch, first_call_s=timing.first))
    return rows


def predict_end_to_end(export_dir: Path, scans: list[Path], work_dir: Path) -> dict:
    """`python -m brainage_tf.predict` on scans on disk: seconds per scan, cold (first) and warm (second)."""
    from brainage_tf import predict

    outputs = iter(range(2))

    def run_once():
        out = work_dir / f"predictions_{export_dir.parent.parent.name}_{next(outputs)}.csv"
        with contextlib.redirect_stdout(io.StringIO()):
            code = predict.main(["--model", str(export_dir), *map(str, scans), "--out", str(out)])
        if code != 0:
            raise RuntimeError(f"predict exited with {code} on {len(scans)} scans")

    timing = time_calls(run_once, 1)
    return dict(
        scans=len(scans), s_per_scan=timing.median / len(scans), cold_s_per_scan=timing.first / len(scans)
    )


def predict_scans_per_hour(export_dir: Path, scans: list[Path], work_dir: Path, workers: int) -> dict:
    """`python -m brainage_tf.predict --workers N` once over ``scans``, cold as a user runs it."""
    from brainage_tf import predict

    out = work_dir / f"predictions_{export_dir.parent.parent.name}_per_hour.csv"
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = predict.main(
            ["--model", str(export_dir), *map(str, scans), "--out", str(out), "--workers", str(workers)]
        )
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"predict exited with {code} on {len(scans)} scans")
    return dict(
        scans=len(scans), workers=workers, seconds=seconds, scans_per_hour=3600 * len(scans) / seconds
    )


def ingest_process(subjects: int, grid: str, workers, work_dir: Path) -> dict:
    """Runs `ingest_build.py --json` in its own process; returns its JSON result."""
    command = [sys.executable, str(HERE / "ingest_build.py"), "--subjects", str(subjects), "--grid", grid]
    command += ["--workers", *map(str, workers), "--work_dir", str(work_dir), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def input_pipeline(dataset: str, data_dir: str) -> dict:
    """Volumes per second `brainage_tf.data.training_epochs` delivers at batch 1 from the builder's TFRecords.

    The first epoch reads and decodes the TFRecords (and fills the in-memory cache);
    the second reads the cache.
    """
    from brainage_tf import data

    source = data.tfds_source(dataset, "train", data_dir)
    count = len(data.read_labels(source).ages)
    epochs = data.training_epochs(source, data.Selection(0.0, 100.0, 0.0), count, 1, seed=0)
    first_batch = {}

    def one_epoch():
        start = time.perf_counter()
        for index, _ in enumerate(epochs(0).take(count)):
            if index == 0:
                first_batch.setdefault("s", time.perf_counter() - start)

    timing = time_calls(one_epoch, 1)
    return dict(
        volumes=count,
        from_tfrecords_volumes_per_s=count / timing.first,
        from_cache_volumes_per_s=count / timing.median,
        first_batch_s=first_batch["s"],
    )


def registration_process(cases: int) -> list[dict]:
    """Runs `registration_accuracy.py --json` in its own process (pinned to one core); returns its rows."""
    command = [sys.executable, str(HERE / "registration_accuracy.py"), "--cases", str(cases), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main_job(work_dir: Path) -> dict:
    """The README's main job, `python -m brainage_tf.train`, from scratch: a new data dir and run folder.

    Returns its wall seconds (generation, ingest, training and export), the seconds its final line
    gives for training, the best validation MAE and the run directory.
    """
    folder = work_dir / "main_job"
    folder.mkdir()
    env = {**os.environ, "TFDS_DATA_DIR": str(folder / "tensorflow_datasets")}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "brainage_tf.train"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"python -m brainage_tf.train failed:\n{done.stderr[-2000:]}")
    final = re.search(r"done in (\d+) s: best validation MAE ([\d.]+) y", done.stdout)
    run_dir = re.search(r"^run directory: (.+)$", done.stdout, re.MULTILINE)
    if final is None or run_dir is None:
        raise RuntimeError(f"python -m brainage_tf.train ended without its summary:\n{done.stdout[-2000:]}")
    return dict(
        seconds=seconds,
        training_s=float(final.group(1)),
        best_val_mae=float(final.group(2)),
        run_dir=run_dir.group(1).strip(),
    )


def evaluation_calibration(run_dir: Path, work_dir: Path) -> dict:
    """`evaluation_calibration.measure` on a finished run: the forward pass it replaced, fit and reuse."""
    from evaluation_calibration import measure

    work = work_dir / "evaluation_calibration"
    work.mkdir()
    return measure(run_dir, work)
