"""Run the brain-age pipeline on this machine: `python -m pipelines.run --local --out DIR [flags]`.

Kubeflow Pipelines' local runner (`kfp.local`, SubprocessRunner without a venv)
runs each component as a subprocess of this Python environment, in order. Under
`--out`: `store/` (every component's outputs, by fingerprint), `serving/` (the
Pusher's TF Serving model folder) and `kfp_runs/` (kfp.local's per-run task
folders). A second run with the same flags reuses every output; a failed
component stops the run, names the cause, and leaves earlier outputs as they were.
See docs/pipelines.md.
"""

import argparse
import json
import re
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from brainage_tf.console import add_verbose_argument, entry_point
from brainage_tf.model_registry import DEFAULT_MODEL, model_names
from brainage_tf.training.config import PRESETS
from pipelines.artifacts import ERROR_FILE
from pipelines.brain_age_pipeline import (
    DEFAULT_BUILDER,
    DEFAULT_CONFIG,
    DEFAULT_MAX_MAE,
    PIPELINE_NAME,
    brain_age_pipeline,
)

TASKS = ("example-gen", "trainer", "evaluator", "pusher")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.run", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--local", action="store_true", help="Run on this machine with kfp.local (the one runner here).")
    add("--out", type=Path, required=True, help="Folder for store/, serving/ and kfp_runs/.")
    add("--store", type=Path, help="Output store (default OUT/store); share it between runs to reuse.")
    add("--serving-dir", type=Path, help="TF Serving model folder (default OUT/serving).")
    add("--builder", default=DEFAULT_BUILDER, help="synthetic_cohort, nihpd or mghbch (default %(default)s).")
    add("--config", default=DEFAULT_CONFIG, help="Builder config name or JSON config (default %(default)s).")
    add("--manual-dir", default="", help="Your copy of nihpd or mghbch.")
    add(
        "--beam-pipeline-options",
        default="",
        help='As tfds build, e.g. "runner=FlinkRunner,flink_master=H:8081".',
    )
    add("--model", choices=model_names(), default=DEFAULT_MODEL)
    add("--preset", choices=tuple(PRESETS), default="demo")
    add("--train-args", default="", help='More python -m brainage_tf.train flags, e.g. "--epochs 5".')
    add("--split", default="test", help="Split the Evaluator evaluates (default %(default)s).")
    add(
        "--max-mae",
        type=float,
        default=DEFAULT_MAX_MAE,
        help="Largest MAE (years) blessed (default %(default)s).",
    )
    add_verbose_argument(parser)
    return parser


def read_run(run_dir: Path) -> dict[str, dict[str, dict]]:
    """Task -> output name -> artifact metadata, from the executor outputs of one kfp.local run."""
    outputs = {}
    for task in TASKS:
        path = run_dir / task / "executor_output.json"
        if path.is_file():
            artifacts = json.loads(path.read_text()).get("artifacts", {})
            outputs[task] = {name: value["artifacts"][0]["metadata"] for name, value in artifacts.items()}
    return outputs


def headline(task: str, outputs: dict[str, dict]) -> str:
    """One line on what a task produced."""
    if task == "example-gen":
        meta = outputs["examples"]
        counts = meta["ingest_summary"]
        return f"{meta['dataset']}: {counts['rows_in']:.0f} rows in, {counts['examples_written']:.0f} written"
    if task == "trainer":
        mae = outputs["model"]["best_val_mae"]
        return "no validation part" if mae is None else f"best validation MAE {mae:.3f} y"
    if task == "evaluator":
        blessing = outputs["blessing"]
        verdict = "blessed" if blessing["blessed"] else "not blessed: " + "; ".join(blessing["reasons"])
        return f"MAE {blessing['mae']:.3f} y on {blessing['split']}, {verdict}"
    decision = outputs["pushed_model"]
    version = decision["version"]
    return f"pushed version {version:.0f}" if decision["pushed"] else f"no push: {decision['reason']}"


def failure_message(run_dir: Path | None, error: Exception) -> str:
    """The failed component's own one-line message, else kfp's."""
    if run_dir is not None:
        for task in TASKS:
            note = run_dir / task / ERROR_FILE
            if note.is_file():
                return note.read_text().strip()
    return _ANSI.sub("", str(error))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m pipelines.run`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.local:
        parser.error("only --local runs here; for a cluster, compile with python -m pipelines.compile.")
    try:
        train_args = shlex.split(args.train_args)
    except ValueError as error:
        parser.error(f"--train-args: {error}")
    from kfp import local

    out = args.out.resolve()
    store = (args.store or out / "store").resolve()
    serving = (args.serving_dir or out / "serving").resolve()
    runs = out / "kfp_runs"
    runs.mkdir(parents=True, exist_ok=True)
    before = set(runs.iterdir())
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(runs), raise_on_error=True)
    # The subprocess runner uses this environment, not the cluster image the tasks name.
    warnings.filterwarnings("ignore", message=".*non-Python base image.*", category=RuntimeWarning)
    try:
        brain_age_pipeline(
            store_dir=str(store),
            serving_dir=str(serving),
            builder=args.builder,
            config=args.config,
            manual_dir=args.manual_dir,
            beam_pipeline_options=args.beam_pipeline_options,
            model_name=args.model,
            preset=args.preset,
            train_args=train_args,
            split=args.split,
            max_mae=args.max_mae,
        )
        failure = None
    except RuntimeError as error:
        failure = error
    new = sorted(set(runs.iterdir()) - before)
    run_dir = new[-1] if new else None
    if failure is not None:
        print(
            f"{parser.prog}: error: {failure_message(run_dir, failure)}\n"
            f"the pipeline stopped there; earlier outputs are kept in {store}",
            file=sys.stderr,
        )
        return 1
    outputs = read_run(run_dir)
    print(f"{PIPELINE_NAME} pipeline done: {run_dir}")
    for task in TASKS:
        first = next(iter(outputs[task].values()))
        state = "reused" if first["reused"] else "ran"
        print(f"  {task:<12} {state:<7} {first['fingerprint'][:12]}  {headline(task, outputs[task])}")
    print(f"store: {store}\nserving: {serving}")
    return 0


# `python -m` and the console script: main with TensorFlow's native log lines off the console.
command = entry_point(main)

if __name__ == "__main__":
    sys.exit(command())
