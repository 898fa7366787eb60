"""The benchmark behind every speed figure of brainage_tf: `python benchmarks/run.py [--quick]`.

Eight sections, measured in one run so that every ratio compares figures taken side by
side (absolute times drift on shared machines):

1. ceilings: float32 and bfloat16 matmul GFLOP/s in TensorFlow;
2. training: seconds per Adam/MAE step of slice_lstm and resnet3d on the `paper` grid
   at batch 1, float32 and mixed_bfloat16: first step, median step, forward GFLOPs
   (analytic, cross-checked once with the TF profiler), fraction of the ceiling, peak RSS;
3. the same models in PyTorch (`pip install -e ".[bench]"`), alternating with ours,
   float32 and bf16 autocast, as ours/PyTorch speed-ups (skipped without torch);
4. inference: the exported SavedModel's seconds per volume at batch 1 and 8, and
   `python -m brainage_tf.predict` end to end (preprocessing included) per scan;
5. input pipeline: volumes per second tf.data delivers from the builder's TFRecords
   at the paper grid, as a multiple of what the fastest training step consumes;
6. ingest scaling: Beam ingest in examples per second with 1 and 2 workers;
7. affine registration on one core: seconds per 1 mm 197x233x189 scan and the corner
   error against known affines (`registration_accuracy.py`); and `predict` with affine
   registration and 2 preprocessing workers over the generated scans, in scans per hour;
8. the README's main job from scratch (`python -m brainage_tf.train` with a new data dir), its
   best validation MAE, and on its run what an evaluation spends on the run's calibration
   (`evaluation_calibration.py`: the forward pass over train it replaced, a fit, a reuse).

Prints the tables and writes them as JSON (`--out`, default benchmarks/results.json).
The full run takes under 40 minutes on 2 cores, `--quick` (fewer steps, rounds,
subjects and models, no section 8) under 5.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sections  # noqa: E402
from flops import TRAINING_FLOPS_PER_FORWARD_FLOP  # noqa: E402

from brainage_tf.model_registry import DEFAULT_MODEL, model_names  # noqa: E402
from brainage_tf.training.precision import BF16_CPU_FLAGS, cpu_flags  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16")
# (full, quick) sizes of each section.
SIZES = {
    "matmul_size": (2048, 2048),
    "matmul_calls": (9, 5),
    "train_steps": (6, 2),
    "train_rounds": (2, 1),
    "inference_models": (model_names(), (DEFAULT_MODEL,)),
    "serving_calls": (3, 2),
    "subjects": (100, 20),
    "predict_scans": (8, 4),
    "registration_cases": (4, 1),
    "affine_predict_scans": (100, 10),
}


def log(line: str) -> None:
    """Progress on stderr, so stdout holds only the tables."""
    print(line, file=sys.stderr, flush=True)


def machine() -> dict:
    """What the figures were measured on."""
    flags = cpu_flags()
    return dict(
        python=platform.python_version(),
        cpus=os.cpu_count(),
        bf16_cpu_flags=sorted(set(BF16_CPU_FLAGS) & flags),
        load_average_at_start=os.getloadavg()[0],
        torch=_torch_version(),
        time=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )


def _torch_version() -> str | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch.__version__


def add_ratios(rows: list[dict]) -> None:
    """Achieved GFLOP/s, fraction of the ceiling measured in the same process, ours/PyTorch speed-up."""
    ours = {(row["model"], row["precision"]): row for row in rows if row["framework"] == "tf"}
    for row in rows:
        training_gflop = TRAINING_FLOPS_PER_FORWARD_FLOP * row["forward_gflops"] * row["batch"]
        row["achieved_gflops"] = training_gflop / row["step_s"]
        row["fraction_of_ceiling"] = row["achieved_gflops"] / row["ceiling_gflops"]
    for row in rows:
        if row["framework"] == "torch":
            ours[row["model"], row["precision"]]["speedup_vs_torch"] = (
                row["step_s"] / ours[row["model"], row["precision"]]["step_s"]
            )


def print_tables(results: dict) -> None:
    """The tables of the JSON results, in Markdown."""
    ceilings = results["ceilings"]
    print(
        f"\nCeilings (matmul {ceilings['matmul_size']}^2): float32 {ceilings['float32_gflops']:.0f} GFLOP/s, "
        f"bfloat16 {ceilings['bfloat16_gflops']:.0f} GFLOP/s"
    )
    print("\nTraining step, paper grid 128x160x112, batch 1 (median step s; x = ours faster than PyTorch)\n")
    print("| model | precision | framework | step s | first step s | fwd GFLOP | TF profiler GFLOP "
          "| GFLOP/s | ceiling GFLOP/s | of ceiling | peak RSS GB | ours vs PyTorch |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in results["training"]:
        speedup = f"{row['speedup_vs_torch']:.2f}x" if "speedup_vs_torch" in row else ""
        print(
            f"| {row['model']} | {row['precision']} | {row['framework']} | {row['step_s']:.3f} | "
            f"{row['first_step_s']:.2f} | {row['forward_gflops']:.1f} | {row['profiler_gflops']:.1f} | "
            f"{row['achieved_gflops']:.0f} | {row['ceiling_gflops']:.0f} | "
            f"{row['fraction_of_ceiling']:.0%} | "
            f"{row['peak_rss_mb'] / 1024:.2f} | {speedup} |"
        )
    if results["machine"]["torch"] is None:
        print("\nPyTorch is not installed (pip install -e '.[bench]'): its rows and the ratios are skipped.")
    print("\nInference, exported SavedModel (serving_default), paper grid\n")
    print("| model | precision | s/volume batch 1 | s/volume batch 8 | predict end to end s/scan (cold) |")
    print("|---|---|---:|---:|---:|")
    for row in results["inference"]:
        by_batch = {entry["batch"]: entry["s_per_volume"] for entry in row["serving"]}
        end_to_end = row.get("predict")
        predicted = (
            f"{end_to_end['s_per_scan']:.2f} ({end_to_end['cold_s_per_scan']:.2f})" if end_to_end else ""
        )
        print(
            f"| {row['model']} | {row['precision']} | {by_batch[1]:.3f} | {by_batch[8]:.3f} | {predicted} |"
        )
    pipeline = results["input_pipeline"]
    print(
        f"\nInput pipeline (paper grid, {pipeline['volumes']} train volumes, batch 1): "
        f"{pipeline['from_tfrecords_volumes_per_s']:.1f} volumes/s from TFRecords "
        f"({pipeline['multiple_of_training']:.1f}x the {pipeline['training_volumes_per_s']:.2f} volumes/s "
        f"of the fastest training step), {pipeline['from_cache_volumes_per_s']:.1f}/s from the cache, "
        f"first batch after {pipeline['first_batch_s']:.1f} s"
    )
    print("\nBeam ingest (DirectRunner)\n")
    print("| grid | subjects | workers | seconds | examples/s | vs 1 worker |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in results["ingest"]:
        print(
            f"| {row['grid']} | {row['subjects']} | {row['workers']} | {row['seconds']:.1f} | "
            f"{row['examples_per_s']:.2f} | {row.get('speedup', '')} |"
        )
    template, every = results["registration"][0], results["registration"][-1]
    print(
        f"\nAffine registration, one core: {template['median_s']:.2f} s per 1 mm "
        f"{'x'.join(map(str, template['shape']))} scan; corner error over {every['cases']} registrations "
        f"mean {every['mean_mm']:.2f} mm, max {every['max_mm']:.2f} mm, {every['failures']} failures\n"
    )
    print("| head | mean mm | max mm | failures | median s |")
    print("|---|---:|---:|---:|---:|")
    for row in results["registration"]:  # no error where every registration of a head failed
        mean, worst = (f"{row[key]:.2f}" if row[key] is not None else "n/a" for key in ("mean_mm", "max_mm"))
        print(f"| {row['head']} | {mean} | {worst} | {row['failures']} | {row['median_s']:.2f} |")
    affine = results["predict_affine"]
    print(
        f"\n`predict` with affine registration ({DEFAULT_MODEL} float32, paper grid, {affine['workers']} "
        f"workers): {affine['scans']} scans in {affine['seconds']:.0f} s, "
        f"{affine['scans_per_hour']:.0f} scans per hour"
    )
    if "main_job" in results:
        job, calibration = results["main_job"], results["evaluation_calibration"]
        print(
            f"\nMain job from scratch (`python -m brainage_tf.train`, a new data dir): "
            f"{job['seconds']:.0f} s, {job['training_s']:.0f} s of it training; "
            f"best validation MAE {job['best_val_mae']:.3f} y"
        )
        print(
            f"Evaluation's calibration on that run ({calibration['train_scans']} train scans, small grid): "
            f"the forward pass over train it replaced {calibration['forward']:.1f} s, a fit "
            f"{calibration['fit']:.1f} s, reused while current {calibration['reused']:.2f} s"
        )
    load = results["machine"]["load_average_at_start"], results["load_average_at_end"]
    print(
        f"\n(total {results['seconds']:.0f} s, load average {load[0]:.1f} at start, {load[1]:.1f} at end; "
        f"{'quick' if results['quick'] else 'full'} run)"
    )


def main() -> None:
    """Runs every section, prints the tables, writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer steps, rounds and subjects (< 5 min).")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results.json")
    parser.add_argument("--work-dir", type=Path, help="Scratch folder (default: a temporary one, removed).")
    args = parser.parse_args()
    size = {name: values[args.quick] for name, values in SIZES.items()}
    started = time.perf_counter()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="brainage_bench_"))
    results = dict(quick=args.quick, machine=machine())
    frameworks = ("tf", "torch") if results["machine"]["torch"] else ("tf",)
    try:
        log("1. matmul ceilings")
        results["ceilings"] = sections.matmul_ceilings(size["matmul_size"], size["matmul_calls"])
        log("7. affine registration, one core")
        results["registration"] = sections.registration_process(size["registration_cases"])
        log("2-3. training steps, one process per configuration")
        results["training"] = sections.training(
            model_names(), PRECISIONS, frameworks, size["train_steps"], size["train_rounds"], log
        )
        add_ratios(results["training"])

        log("6. Beam ingest scaling (generating the synthetic cohort first)")
        small = sections.ingest_process(size["subjects"], "small", (1, 2), work_dir)
        paper = sections.ingest_process(size["subjects"], "paper", (2,), work_dir)
        results["ingest"] = small["rows"] + paper["rows"]
        results["ingest"][1]["speedup"] = round(small["rows"][0]["seconds"] / small["rows"][1]["seconds"], 2)
        results["generation_s"] = small["generation_s"]

        log("5. input pipeline")
        pipeline = sections.input_pipeline(paper["dataset"], paper["rows"][0]["data_dir"])
        fastest = min(row["step_s"] for row in results["training"] if row["framework"] == "tf")
        pipeline.update(training_volumes_per_s=1 / fastest)
        pipeline["multiple_of_training"] = pipeline["from_tfrecords_volumes_per_s"] * fastest
        results["input_pipeline"] = pipeline

        log("4. inference")
        scans = sorted(Path(small["bids"][0]).glob("sub-*/anat/*_T1w.nii.gz"))[: size["predict_scans"]]
        results["inference"] = []
        for model in size["inference_models"]:
            for precision in PRECISIONS:
                export_dir = sections.export_untrained(model, precision, work_dir)
                row = dict(model=model, precision=precision)
                row["serving"] = sections.serving(export_dir, (1, 8), size["serving_calls"])
                if model == DEFAULT_MODEL:  # the predict command around the model is the same for every model
                    row["predict"] = sections.predict_end_to_end(export_dir, scans, work_dir)
                results["inference"].append(row)
                log(f"  {model} {precision}: {row}")

        log("7. predict with affine registration, 2 workers")
        export_dir = sections.export_untrained(DEFAULT_MODEL, "float32", work_dir, registration="affine")
        every_scan = sorted(Path(small["bids"][0]).glob("sub-*/anat/*_T1w.nii.gz"))
        results["predict_affine"] = sections.predict_scans_per_hour(
            export_dir, every_scan[: size["affine_predict_scans"]], work_dir, workers=2
        )
        if not args.quick:
            log("8. the main job from scratch, then the evaluation's calibration on its run")
            results["main_job"] = sections.main_job(work_dir)
            results["evaluation_calibration"] = sections.evaluation_calibration(
                Path(results["main_job"]["run_dir"]), work_dir
            )
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    results["seconds"] = time.perf_counter() - started
    results["load_average_at_end"] = os.getloadavg()[0]
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_tables(results)
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
