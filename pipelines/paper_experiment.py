"""The paper's whole experiment with both models in one command: `python -m pipelines.paper_experiment`.

    python -m pipelines.paper_experiment --cohort synthetic --out DIR [--size full|tiny] [--data-dir D]
        [--discovery synthetic_cohort/CONFIG]
    python -m pipelines.paper_experiment --cohort real --out DIR [--discovery nihpd/paper]
        [--replication mghbch/paper] [--data-dir D] [--replication-data-dir D2] [--replication-split test]
    ... [--seeds K] [--seed FIRST]: every model and setting trained K times, tables as mean ± SD

He et al. (ISBI 2020, section 3), for slice_lstm (2D-ResNet18+LSTM) and resnet3d (3D-ResNet18):
1. train on the discovery cohort's 0-22 y training split; evaluate on its test split
   (Table 1, Fig. 4) and on the replication cohort (Table 2, Fig. 5);
2. train on discovery subjects aged 0-6 y only, and fine-tune step 1's model on them (the
   finetune preset); evaluate both on the replication cohort (Table 3);
3. record each model's training wall time (the paper: 3 h against 7 h on a K80);
4. evaluate the 2D+3D ensembles;
each once per training seed (`--seeds`), on the same subject-hash split.
It writes DIR/report.md and DIR/metrics.json (docs/paper_experiment.md). Training is `Trainer`,
evaluation is `compare.evaluate_members` with `compare_members` and `ensemble_members`; a rerun
with the same flags (any --seeds) reuses finished runs and resumes an interrupted one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from brainage_tf.console import add_verbose_argument, entry_point
from brainage_tf.errors import DatasetError, UsageError
from brainage_tf.training.config import TrainConfig
from pipelines.experiment_folder import check_experiment_folder, minute_log, write_plan

if TYPE_CHECKING:
    from pipelines.paper_report import Setting

COHORTS = ("synthetic", "real")
# --size of the synthetic cohort: (TFDS config, changes to the demo preset). The sizes are
# measured in docs/paper_experiment.md; "tiny" is the end-to-end test's (seconds per run).
SYNTHETIC_SIZES = {
    "full": ("synthetic_cohort/experiment", dict(epochs=20)),
    "tiny": (
        "synthetic_cohort/experiment_tiny",
        dict(epochs=2, batch_size=4, width_multiplier=0.125, slice_size=(40, 40), pool_size=2),
    ),
}
TIMING_NAME = "experiment_timing.json"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.paper_experiment",
        description="He et al. (ISBI 2020) Tables 1-3, CS curves, training times and 2D+3D ensembles "
        "for slice_lstm and resnet3d, in one report.md.",
    )
    add = parser.add_argument
    add("--cohort", choices=COHORTS, required=True, help="The embedded synthetic cohort, or your own builds.")
    add("--out", type=Path, required=True, help="Experiment folder (a rerun with the same flags resumes).")
    add("--size", choices=tuple(SYNTHETIC_SIZES), help="synthetic: full (22 min) or tiny (a test).")
    add("--data-dir", "--data_dir", dest="data_dir", help="TFDS data dir (of the discovery dataset).")
    add(
        "--discovery",
        help="real: TFDS name/config of your discovery build (default nihpd/paper); synthetic: a "
        "synthetic_cohort config built in --data-dir (e.g. another exterior or skull stripping), whose "
        "replication split is the replication cohort (default: the --size's config).",
    )
    add("--replication", help="real: TFDS name/config of your replication build (default mghbch/paper).")
    add("--replication-data-dir", help="real: its TFDS data dir (default: --data-dir).")
    add("--replication-split", help="real: its split (default test; the synthetic cohort's is replication).")
    add("--seeds", type=int, default=1, help="Train every model and setting this many times (default 1).")
    add("--seed", type=int, default=TrainConfig.seed, help="The first training seed; the others follow it.")
    add_verbose_argument(parser)
    return parser


def experiment_plan(args: argparse.Namespace) -> dict:
    """The datasets, seeds and base training config of the flags; UsageError (before TensorFlow) if wrong."""
    if args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {args.seeds}.")
    if args.cohort == "synthetic":
        given = [flag for flag in ("replication", "replication_data_dir", "replication_split")
                 if getattr(args, flag) is not None]  # fmt: skip
        if given:
            raise UsageError(f"--{given[0].replace('_', '-')} applies to --cohort real only.")
        dataset, changes = SYNTHETIC_SIZES[args.size or "full"]
        dataset = args.discovery or dataset
        base = TrainConfig.demo().replace(**changes)
        replication = (dataset, "replication", None)
    else:
        if args.size is not None:
            raise UsageError(
                "--size applies to --cohort synthetic only; --cohort real trains the paper preset."
            )
        dataset = args.discovery or "nihpd/paper"
        base = TrainConfig.paper()
        replication = (
            args.replication or "mghbch/paper",
            args.replication_split or "test",
            args.replication_data_dir,
        )
    for name in (dataset, replication[0]):
        if name.count("/") != 1:
            raise UsageError(f"dataset {name!r} must be a TFDS name/config, e.g. nihpd/paper.")
    from brainage_tf import data  # TensorFlow: only once the flags are known to be usable

    data_dir = args.data_dir or data.default_data_dir()
    # One device per run: the GPU if there is one (tf.distribute setups run brainage_tf.train).
    base = base.replace(dataset=dataset, data_dir=data_dir, seed=args.seed, strategy="one_device")
    base.validate()
    return {
        "cohort": args.cohort,
        "size": args.size,
        "discovery": dataset,
        "replication": {
            "dataset": replication[0],
            "split": replication[1],
            "data_dir": replication[2] or data_dir,
        },
        "config": base.to_json(),
        # Weight initialisation and batch order of each run; the splits do not depend on it.
        "seeds": list(range(args.seed, args.seed + args.seeds)),
    }


def check_out_dir(out: Path, plan: dict) -> None:
    """A new or empty folder, or an experiment with the same plan but any seeds (resumed); else UsageError."""
    check_experiment_folder(out, plan, ignored=("seeds",))


def check_datasets(plan: dict, log: Callable[[str], None]) -> None:
    """Builds the embedded cohort if absent, then checks every split the experiment reads exists."""
    from brainage_tf import data
    from tfds_builders.embedded import ensure_prepared

    data_dir, replication = plan["config"]["data_dir"], plan["replication"]
    try:
        if plan["cohort"] == "synthetic":
            ensure_prepared(plan["discovery"], data_dir, log=log)
        for name, split, where in (
            (plan["discovery"], "train", data_dir),
            (plan["discovery"], "test", data_dir),
            (replication["dataset"], replication["split"], replication["data_dir"]),
        ):
            data.tfds_source(name, split, where)
    except DatasetError as error:
        raise UsageError(str(error)) from None


def train(config: TrainConfig, run_dir: Path, strategy, setting: str, log: Callable[[str], None]) -> dict:
    """Trains one run (or reuses it when finished, resumes it when interrupted); returns its timing."""
    import keras

    from brainage_tf import data
    from brainage_tf.training.run_directory import RunDirectory
    from brainage_tf.training.trainer import Trainer, with_preprocessing
    from pipelines.paper_report import SETTING_BY_NAME, epoch_seconds

    run = RunDirectory(run_dir)
    timing_path = run_dir / TIMING_NAME
    name = f"{config.model} {SETTING_BY_NAME[setting].description} seed {config.seed}"
    if timing_path.is_file():
        log(f"{name}: finished earlier, reusing {run_dir}")
        return json.loads(timing_path.read_text())
    source = data.tfds_source(config.dataset, config.train_split, config.data_dir)
    # As training records it: a run started on this dataset has its preprocessing in config.json.
    config = with_preprocessing(config, source)
    resume = run.config_path.is_file()
    if resume:
        saved = run.read_config()
        # A fine-tuning run records its parent's fingerprint when it starts; the resume checks it.
        config = config.replace(init_fingerprint=saved.init_fingerprint)
        if saved.to_json() != config.to_json():
            raise UsageError(f"{run_dir} holds a run with another config; choose another --out.")
    keras.backend.clear_session()  # the previous run's graphs
    started = time.perf_counter()
    results = Trainer(config, source, strategy, run, log=lambda line: log(f"[{name}] {line}"))
    results = results.fit(resume=resume)
    timing = {
        "model": config.model,
        "setting": setting,
        "seed": config.seed,
        "dataset": config.dataset,
        "num_train": results["num_train"],
        "epochs": results["completed_epochs"],
        "epoch_seconds": epoch_seconds(run.read_history()),
        "wall_seconds": time.perf_counter() - started,
        "resumed": resume,
    }
    timing_path.write_text(json.dumps(timing, indent=2) + "\n")
    return timing


def run_dir(out: Path, seed: int, setting: Setting, model: str) -> Path:
    """The run of one model in one setting with one seed: out/runs/seed<S>/<model>_<setting>."""
    return out / "runs" / f"seed{seed}" / f"{model}_{setting.name}"


def setting_config(base: TrainConfig, setting: Setting, model: str, seed: int, out: Path) -> TrainConfig:
    """The training config of one run: the base, the setting's changes, the model and the seed.

    A fine-tuning setting starts from its parent setting's run of the same model and seed, and
    trains no more epochs than the base (the tiny size's two).
    """
    from pipelines.paper_report import SETTING_BY_NAME

    config = base.replace(**setting.changes, model=model, seed=seed)
    if setting.parent is None:
        return config
    parent = run_dir(out.resolve(), seed, SETTING_BY_NAME[setting.parent], model)
    return config.replace(init_from=str(parent), epochs=min(config.epochs, base.epochs))


def evaluate(plan: dict, out: Path, log: Callable[[str], None]) -> dict:
    """Each table's runs evaluated once per seed, then compared and ensembled; returns their folders."""
    from brainage_tf.evaluation import compare, ensemble
    from brainage_tf.evaluation.run_evaluation import EvaluationRequest
    from pipelines.paper_report import PAPER_MODELS, SETTING_BY_NAME, TABLES

    evaluations = {}
    for spec in TABLES:
        replication = plan["replication"]
        dataset, split, data_dir = (
            (replication["dataset"], replication["split"], replication["data_dir"])
            if spec.on_replication
            else (plan["discovery"], "test", plan["config"]["data_dir"])
        )
        log(f"{spec.title}: evaluating on {dataset}:{split}")
        template = EvaluationRequest(
            run_dir=None, dataset=dataset, split=split, data_dir=data_dir, age_edges=spec.edges
        )
        settings = {}
        for name in spec.settings:
            setting, seeds = SETTING_BY_NAME[name], []
            for seed in plan["seeds"]:
                runs = [run_dir(out, seed, setting, model) for model in PAPER_MODELS]
                members = compare.evaluate_members(runs, template, log)
                # A table of several settings keeps each one's comparison apart.
                folder = out / spec.key / f"seed{seed}" / (name if len(spec.settings) > 1 else "")
                compare_dir = compare.compare_members(members, folder / "compare", template)
                ensemble_dir = ensemble.ensemble_members(members, folder / "ensemble", template)
                seeds.append({"seed": seed, "compare_dir": compare_dir, "ensemble_dir": ensemble_dir})
            settings[name] = seeds
        evaluations[spec.key] = {"set": f"{dataset}:{split}", "settings": settings}
    return evaluations


def run_experiment(plan: dict, out: Path, log: Callable[[str], None] = print) -> Path:
    """Trains every model in every setting once per seed, evaluates them, writes out/report.md; returns it."""
    # Here, not at the top: the report's pandas, scipy and matplotlib would slow a bad flag's answer.
    from brainage_tf.training.distribute import make_strategy, worker_role_from_env
    from pipelines.paper_report import PAPER_MODELS, SETTINGS, write_experiment_report

    started = time.perf_counter()
    check_datasets(plan, log)
    write_plan(out, plan)
    base = TrainConfig.from_json(plan["config"])
    strategy = make_strategy(base.strategy, worker_role_from_env())
    runs, timings, seeds = [], [], plan["seeds"]
    # Seed by seed: an interrupted experiment has whole seeds finished.
    for seed in seeds:
        for setting in SETTINGS:
            for model in PAPER_MODELS:
                runs.append(run_dir(out, seed, setting, model))
                config = setting_config(base, setting, model, seed, out)
                timings.append(train(config, runs[-1], strategy, setting.name, log))
    evaluations = evaluate(plan, out, log)
    replication = plan["replication"]
    seeds_text = (
        f"seed {seeds[0]}"
        if len(seeds) == 1
        else f"seeds {', '.join(map(str, seeds))} (weight initialisation and batch order; the same "
        "train/test split and validation subjects for every seed)"
    )
    context = [
        f"Discovery cohort `{plan['discovery']}` (splits train, test) in `{base.data_dir}`; replication "
        f"cohort `{replication['dataset']}` (split {replication['split']}) in `{replication['data_dir']}`.",
        f"Preset `{base.preset}`"
        + (f", size `{plan['size'] or 'full'}`" if plan["cohort"] == "synthetic" else "")
        + f": {base.epochs} epochs, batch {base.batch_size}, Adam {base.learning_rate:g} halved every "
        f"{base.halve_every_epochs} epochs, ResNet18 width x{base.width_multiplier:g}, slices "
        f"{base.slice_size[0]}x{base.slice_size[1]}, pooling k = {base.pool_size}, validation fraction "
        f"{base.validation_fraction:g} ({'best' if base.selects_best_epoch else 'final'} epoch kept), "
        f"{seeds_text}.",
        "Runs: " + ", ".join(f"`{path.relative_to(out).as_posix()}`" for path in runs) + ".",
        f"Total wall time {(time.perf_counter() - started) / 60:.1f} min (reused runs count as zero).",
    ]
    cohort = plan["discovery"]
    if plan["cohort"] == "real":
        cohort += f" + {replication['dataset']}"
    return write_experiment_report(out, cohort, context, evaluations, timings)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m pipelines.paper_experiment`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    log = minute_log()
    try:
        plan = experiment_plan(args)
        check_out_dir(args.out, plan)
        path = run_experiment(plan, args.out, log)
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    log(f"report: {path}")
    return 0


# `python -m` and the console script: main with TensorFlow's native log lines off the console.
command = entry_point(main)

if __name__ == "__main__":
    sys.exit(command())
