"""Training as a function: a TrainConfig in, a TrainingResult out, a UsageError for a bad request.

`python -m brainage_tf.train` and the pipelines' Trainer component both call `train`,
so a flag, a preset or an error means the same in both, and neither reads the
other's console (Model Garden's `train_lib.run_experiment` plays this part there).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path

from brainage_tf.errors import DatasetError, UsageError
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.distribute import WorkerRole, make_strategy, split_cpu, worker_role_from_env
from brainage_tf.training.init_from import check_parent
from brainage_tf.training.run_directory import RunDirectory


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """What one training session produced.

    Attributes:
        run_dir: The run directory (the chief's).
        config: The config the run recorded (precision resolved, preprocessing filled in).
        results: The closing figures, as written to results.json.
        seconds: Wall time of the training loop, dataset preparation and export excluded.
        export_dir: The exported SavedModel folder, or None without an export.
    """

    run_dir: Path
    config: TrainConfig
    results: dict
    seconds: float
    export_dir: Path | None


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    export: bool = True,
    logical_cpus: int = 0,
    role: WorkerRole | None = None,
    log: Callable[[str], None] = print,
    verbose: bool = False,
    progress_bar: bool = False,
) -> TrainingResult:
    """Trains one run: prepares the embedded dataset if needed, fits, then calibrates and exports.

    Args:
        config: The run's configuration. With resume, the run's config.json (`resumed_config`)
            with at most `epochs` changed.
        run_dir: The run directory; a new run needs it absent or empty.
        resume: Continue the run from its last checkpoint (`config.epochs` may extend it).
        export: Fit the calibration and export the selected model after training (chief only).
        logical_cpus: Split the CPU into this many logical devices first (>1 only).
        role: This process's cluster role (default: from TF_CONFIG).
        log: Progress printer.
        verbose: Show Beam's and TFDS's INFO logs while building a dataset.
        progress_bar: Show bars within epochs and dataset builds (for a terminal).

    Returns:
        The TrainingResult.

    Raises:
        UsageError: The request cannot run: a bad config, a run directory in the way or
            without a config to resume, a dataset that is missing or cannot be built.
    """
    role = role or worker_role_from_env()
    run = RunDirectory(Path(run_dir), role)
    if resume:
        recorded = run.read_config()
        changed = [
            field.name
            for field in dataclasses.fields(TrainConfig)
            if field.name != "epochs" and getattr(config, field.name) != getattr(recorded, field.name)
        ]
        if changed:
            raise UsageError(
                f"a resume continues the config in {run.config_path}; it differs in {', '.join(changed)} "
                "(only epochs may change)."
            )
    else:
        run.check_new()
    config.validate()
    if logical_cpus > 1:
        split_cpu(logical_cpus)
    strategy = make_strategy(config.strategy, role)

    from brainage_tf import data
    from brainage_tf.training.trainer import Trainer
    from tfds_builders.embedded import ensure_prepared

    config = config.replace(data_dir=config.data_dir or data.default_data_dir())
    try:
        ensure_prepared(config.dataset, config.data_dir, log=log, verbose=verbose, progress_bar=progress_bar)
        source = data.tfds_source(config.dataset, config.train_split, config.data_dir)
    except DatasetError as error:
        raise UsageError(str(error)) from None
    if config.init_from and not resume:
        # Before any model is built: the weights are loaded when fit starts the run.
        check_parent(config, source)
    started = time.perf_counter()
    trainer = Trainer(config, source, strategy, run, log=log, progress_bar=progress_bar)
    results = trainer.fit(resume=resume)
    seconds = time.perf_counter() - started
    export_dir = export_for_serving(run) if export and role.is_chief else None
    return TrainingResult(run.path, trainer.config, results, seconds, export_dir)


def resumed_config(run_dir: str | Path, epochs: int | None = None) -> TrainConfig:
    """The config of the run to resume, with `epochs` extended when given.

    Raises:
        UsageError: The directory has no readable config.json.
    """
    config = RunDirectory(Path(run_dir), worker_role_from_env()).read_config()
    return config.replace(epochs=epochs) if epochs else config


def export_for_serving(run: RunDirectory) -> Path:
    """Fits the run's calibration, then exports its selected model; returns the export folder.

    best_model.keras is loaded once for both (1-2 s a load on the demo's models).
    """
    from brainage_tf.evaluation.inference import load_run_model
    from brainage_tf.evaluation.run_calibration import calibrate_run
    from brainage_tf.serving.export import export_run

    selected_model = functools.cache(lambda: load_run_model(run, run.read_config()))
    calibrate_run(run.path, load_model=selected_model)
    return export_run(run.path, model=selected_model()).resolve()
