"""With N labelled scans of my site, which adaptation should I use? `python -m pipelines.site_adaptation`.

    python -m pipelines.site_adaptation --out DIR [--size full|tiny] [--seeds 3] [--seed 0]
        [--sizes 5 10 20 40] [--model slice_lstm] [--data-dir D]

On the embedded synthetic cohort, per seed:
1. trains the parent on the discovery cohort's 0-22 y training split (the demo preset);
2. shuffles the replication site's subjects; holds out all but the largest N for scoring;
   the training sets are nested: the first N of the rest;
3. for each N, adapts the parent five ways (`site_report.METHODS`): none; recalibration on
   the N (`evaluation.controls.fit_on_controls`, what `python -m brainage_tf.calibrate`
   fits); fine-tuning with the encoder frozen and everything trained (`--init-from`, the
   finetune preset, `--train-subjects`); and training from scratch on the N (the demo preset);
4. scores each on the held-out site subjects: MAE and coverage of the 90 % intervals.
It writes DIR/report.md (tables and learning_curve.png) and DIR/metrics.json; a rerun with
the same flags reuses finished runs (docs/training.md, "Adapt to your site").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from brainage_tf.console import add_verbose_argument, entry_point
from brainage_tf.errors import UsageError
from brainage_tf.evaluation.calibration import DEFAULT_CONFORMAL_LEVEL
from brainage_tf.evaluation.controls import minimum_controls
from brainage_tf.model_registry import DEFAULT_MODEL, model_names
from brainage_tf.training.config import TrainConfig
from pipelines.experiment_folder import check_experiment_folder, minute_log, write_plan

SITE_SPLIT = "replication"
# With the encoder frozen, the BiLSTM and head want a larger step than the preset's 1e-4: docs/training.md,
# "The finetune preset and the measurement behind it" (3e-4 best in one run, 1e-4 worst in both).
FROZEN_LEARNING_RATE = 3e-4
# Site subjects every seed scores on, at the least: a coverage from fewer says little.
MIN_HELD_OUT = 20


@dataclasses.dataclass(frozen=True)
class Size:
    """One --size: the cohort, the N it affords and the training changes.

    Attributes:
        dataset: TFDS name/config of the cohort (discovery `train`, site `replication`).
        cohort: The synthetic_cohort JSON config that builds it when absent (None: must exist).
        sizes: The N of the curve.
        changes: Changes to every run's presets (architecture for all, epoch cap for tiny).
    """

    dataset: str
    cohort: dict | None
    sizes: tuple[int, ...]
    changes: dict


# The small grid's cohorts with 120 site subjects (80 held out beside N = 40), generated at 1.5 mm
# before the usual resampling to the 3 mm grid, as benchmarks/finetune_preset.py measured the preset.
SIZES = {
    "full": Size(
        "synthetic_cohort/site_adaptation",
        {
            "name": "site_adaptation",
            "grid": "small",
            "registration": "none",
            "replication_subjects": 120,
            "voxel_scale": 1.5,
        },
        (5, 10, 20, 40),
        {},
    ),  # fmt: skip
    "tiny": Size(
        "synthetic_cohort/site_adaptation_tiny",
        {
            "name": "site_adaptation_tiny",
            "grid": "tiny",
            "registration": "none",
            "discovery_subjects": 24,
            "replication_subjects": 40,
            "voxel_scale": 3.9,
        },
        (5, 10),
        {"epochs": 2, "width_multiplier": 0.125, "slice_size": (40, 40), "pool_size": 2},
    ),  # fmt: skip
}


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.site_adaptation",
        description="The learning curve of adapting a trained model to a new site: MAE and interval "
        "coverage on held-out site subjects against N labelled site subjects, five methods, seeds.",
    )
    add = parser.add_argument
    add("--out", type=Path, required=True, help="Experiment folder (a rerun with the same flags resumes).")
    add("--size", choices=tuple(SIZES), default="full", help="full (the report's) or tiny (a test).")
    add("--sizes", type=int, nargs="+", help="The N of the curve (default: the size's).")
    add("--seeds", type=int, default=3, help="Seeds: subject draws and training seeds (default 3).")
    add("--seed", type=int, default=0, help="The first seed; the others follow it.")
    add("--model", choices=model_names(), default=DEFAULT_MODEL, help="Default %(default)s.")
    add("--data-dir", "--data_dir", dest="data_dir", help="TFDS data dir.")
    add_verbose_argument(parser)
    return parser


def experiment_plan(args: argparse.Namespace) -> dict:
    """The flags as a plan; UsageError for a bad one, before TensorFlow."""
    size = SIZES[args.size]
    sizes = tuple(sorted(set(args.sizes or size.sizes)))
    if args.seeds < 1 or sizes[0] < 2:
        raise UsageError(f"--seeds must be at least 1 and every N at least 2, got {args.seeds} and {sizes}.")
    from brainage_tf import data  # TensorFlow: only once the flags are known to be usable

    return {
        "size": args.size,
        "site": f"{size.dataset}:{SITE_SPLIT}",
        "dataset": size.dataset,
        "data_dir": args.data_dir or data.default_data_dir(),
        "model": args.model,
        "sizes": list(sizes),
        "seeds": list(range(args.seed, args.seed + args.seeds)),
        "level": DEFAULT_CONFORMAL_LEVEL,
        "min_controls": minimum_controls(DEFAULT_CONFORMAL_LEVEL),
    }


def check_out_dir(out: Path, plan: dict) -> None:
    """A new or empty folder, or an experiment with the same plan (resumed); else UsageError."""
    check_experiment_folder(out, plan)


def prepare(plan: dict, log: Callable[[str], None]) -> None:
    """Builds the size's cohort when it is not prepared in the data dir."""
    from brainage_tf import data
    from brainage_tf.errors import DatasetError
    from tfds_builders.prepare import prepare_dataset

    cohort = SIZES[plan["size"]].cohort
    if data.is_prepared(plan["dataset"], plan["data_dir"]):
        return
    if cohort is None:
        raise UsageError(f"{plan['dataset']} is not prepared in {plan['data_dir']}.")
    log(f"building {plan['dataset']} in {plan['data_dir']} (first run only)")
    try:
        prepare_dataset("synthetic_cohort", json.dumps(cohort), plan["data_dir"])
    except DatasetError as error:
        raise UsageError(str(error)) from None


def fit(config: TrainConfig, run_dir: Path, log: Callable[[str], None]) -> float:
    """Trains one run, or reuses it when finished (resumes it when interrupted); returns its seconds."""
    from brainage_tf.training.train_lib import resumed_config, train

    done = run_dir / "results.json"
    if done.is_file():
        return float(json.loads(done.read_text())["session_seconds"])
    resume = (run_dir / "config.json").is_file()
    # An interrupted run continues its recorded config (the plan check made it this one).
    config = resumed_config(run_dir) if resume else config
    return train(config, run_dir, resume=resume, export=False, log=log).seconds


def trained_configs(base: TrainConfig, parent: Path, subjects: Sequence[str], seed: int) -> dict:
    """Method -> the config of each trained adaptation on the listed site subjects."""
    from brainage_tf.training.init_from import inherit_architecture, read_parent

    count = len(subjects)
    validation = max(1, round(base.validation_fraction * count))
    site = dict(
        train_split=SITE_SPLIT,
        train_subjects=tuple(subjects),
        seed=seed,
        # No subject is left for intervals at these N: every one trains or picks the epoch.
        calibration_fraction=0.0,
        batch_size=min(base.batch_size, count - validation),
        dataset=base.dataset,
        data_dir=base.data_dir,
        strategy="one_device",
    )
    finetune = TrainConfig.finetune()
    tuned = inherit_architecture(
        finetune.replace(**site, epochs=min(finetune.epochs, base.epochs)), read_parent(parent)
    )
    return {
        "finetune_encoder": tuned.replace(freeze="encoder", learning_rate=FROZEN_LEARNING_RATE),
        "finetune_all": tuned,
        "scratch": base.replace(**site),
    }


def run_seed(plan: dict, out: Path, seed: int, log: Callable[[str], None]) -> list[dict]:
    """Every method at every N for one seed; one row per (method, N)."""
    import keras
    import numpy as np

    from brainage_tf import data
    from brainage_tf.evaluation import inference
    from brainage_tf.evaluation.controls import fit_on_controls
    from brainage_tf.evaluation.run_calibration import calibrate_run
    from pipelines import site_report

    folder = out / "runs" / f"seed{seed}"
    finished = folder / "rows.json"
    if finished.is_file():
        log(f"seed {seed}: finished earlier, reusing {finished}")
        return json.loads(finished.read_text())
    size = SIZES[plan["size"]]
    base = TrainConfig.demo().replace(
        **size.changes, model=plan["model"], dataset=plan["dataset"], data_dir=plan["data_dir"], seed=seed,
        strategy="one_device",
    )  # fmt: skip
    parent = folder / "parent"
    quiet = lambda line: None  # noqa: E731  (the runs' own logs are in their folders)
    log(f"seed {seed}: the parent, {plan['model']} on {plan['dataset']}:train")
    site = data.tfds_source(plan["dataset"], SITE_SPLIT, plan["data_dir"])
    try:  # before any training: a site too small for the N is one line, not a lost parent
        draw = site_report.draw_subjects(
            data.read_labels(site).subject_ids.astype(str), plan["sizes"][-1], seed, MIN_HELD_OUT
        )
    except ValueError as error:
        raise UsageError(f"{site.description}: {error}; choose smaller --sizes") from None
    fit(base, parent, lambda line: log(f"seed {seed}, parent: {line}"))
    calibration = calibrate_run(parent, log=quiet)
    everyone = data.Selection(validation_fraction=0.0)
    keras.backend.clear_session()
    by_parent = inference.predict(keras.models.load_model(parent / "best_model.keras"), site, everyone, "all")
    subject_ids = by_parent.columns["subject_id"]
    (folder / "subjects.json").write_text(json.dumps(dataclasses.asdict(draw), indent=2) + "\n")
    held = np.isin(subject_ids, draw.held_out)
    ages, predicted = by_parent.ages[held], by_parent.predicted[held]
    sessions = by_parent.columns.get("session", np.full(len(subject_ids), ""))
    rows = []

    def add(method: str, count: int, scores: dict, seconds: float = 0.0) -> None:
        rows.append({"seed": seed, "n_train": count, "method": method, **scores, "seconds": seconds})
        log(f"seed {seed}, N = {count}, {method}: MAE {scores['mae']:.3f}, coverage {scores['coverage']}")

    for count in plan["sizes"]:
        listed = draw.first(count)
        add("none", count, site_report.score(ages, predicted, *_interval(calibration.conformal, predicted)))
        controls = np.isin(subject_ids, listed)
        try:
            fits = fit_on_controls(
                by_parent.ages[controls], by_parent.predicted[controls], subject_ids[controls],
                sessions[controls], None, by_parent.intensity_mean[controls],
                by_parent.intensity_std[controls], calibration.reference.age, plan["level"],
            )  # fmt: skip
        except ValueError as error:
            log(f"seed {seed}, N = {count}, recalibration: not possible ({error})")
        else:
            served = fits.bias_correction.apply_without_age(predicted)
            add("recalibration", count, site_report.score(ages, served, *fits.conformal.interval(predicted)))
        for method, config in trained_configs(base, parent, listed, seed).items():
            run_dir = folder / f"n{count}" / method
            seconds = fit(config, run_dir, quiet)
            keras.backend.clear_session()
            model = keras.models.load_model(run_dir / "best_model.keras")
            held_out = inference.predict(
                model, site, dataclasses.replace(everyone, subjects=draw.held_out), "all"
            )
            add(method, count, site_report.score(held_out.ages, held_out.predicted, None, None), seconds)
    finished.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def _interval(conformal, predicted):
    """The parent's interval ends, or (None, None) when it has no finite one."""
    if conformal is None:
        return None, None
    return conformal.interval(predicted)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m pipelines.site_adaptation`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    started = time.perf_counter()
    log = minute_log()
    try:
        plan = experiment_plan(args)
        check_out_dir(args.out, plan)
        prepare(plan, log)
        write_plan(args.out, plan)
        rows = [row for seed in plan["seeds"] for row in run_seed(plan, args.out, seed, log)]
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    from pipelines import site_report

    context = [
        f"Cohort `{plan['dataset']}`: the parent trains on its discovery `train` split (demo preset); "
        f"the site is its `{SITE_SPLIT}` split (other scanners, 0-6 y).",
        f"Seeds {', '.join(map(str, plan['seeds']))}: each draws the held-out and training subjects "
        "and seeds every training; N sets are nested within a seed.",
        f"Model `{plan['model']}`, size `{plan['size']}`; wall time "
        f"{(time.perf_counter() - started) / 60:.1f} min (reused runs count as zero).",
    ]
    path = site_report.write_report(args.out, plan, rows, context)
    log(f"report: {path}")
    return 0


# `python -m` and the console script: main with TensorFlow's native log lines off the console.
command = entry_point(main)

if __name__ == "__main__":
    sys.exit(command())
