"""Tests of `python -m brainage_tf.train`: flags, the run directory, the main job and tf.distribute.

The command line runs on a tiny TFDS dataset written by this test, except the
main-job test, which builds a shrunken embedded synthetic cohort through the
real builder and Beam ingest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_checks import free_ports
from toy_data import TOY_VERSION, store_toy_tfds, toy_cohort, toy_record, write_record

from brainage_tf import train
from brainage_tf.serving.metadata import METADATA_ASSET
from brainage_tf.training import flags
from brainage_tf.training.config import PRESETS, TrainConfig
from brainage_tf.training.run_directory import RunDirectory

REPO = Path(__file__).resolve().parents[1]
TOY_SHAPE = (36, 20, 14)
TINY_FLAGS = [
    "--epochs",
    "1",
    "--batch-size",
    "2",
    "--width-multiplier",
    "0.125",
    "--slice-size",
    "40",
    "40",
    "--pool-size",
    "2",
    "--no-export",  # the main-job test covers the export at the end of training
]
PROCESS_TIMEOUT_S = 300


def tiny_demo() -> TrainConfig:
    return TrainConfig.demo().replace(
        epochs=2, batch_size=2, width_multiplier=0.125, slice_size=(40, 40), pool_size=2
    )


@pytest.fixture(scope="module")
def toy_tfds(tmp_path_factory) -> str:
    """A prepared TFDS dataset `toy_cohort/tiny` (40 subjects, 36x20x14) in a temp data dir."""
    import tensorflow_datasets as tfds

    data_dir = tmp_path_factory.mktemp("tfds")
    volumes, ages, subject_ids = toy_cohort(40, TOY_SHAPE, seed=1)
    examples = [
        (index, {"volume": volume.astype(np.float16), "age": age, "subject_id": subject_id})
        for index, (volume, age, subject_id) in enumerate(zip(volumes, ages, subject_ids, strict=True))
    ]
    features = tfds.features.FeaturesDict(
        {
            "volume": tfds.features.Tensor(shape=TOY_SHAPE, dtype=np.float16, encoding="zlib"),
            "age": np.float32,
            "subject_id": tfds.features.Text(),
        }
    )
    tfds.dataset_builders.store_as_tfds_dataset(
        name="toy_cohort",
        version=TOY_VERSION,
        features=features,
        split_datasets={"train": examples},
        config="tiny",
        data_dir=str(data_dir),
    )
    write_record(data_dir, "toy_cohort", toy_record(TOY_SHAPE))
    return str(data_dir)


def run_processes(argv_list: list[list[str]], env_list: list[dict | None]) -> list[tuple[int, str]]:
    """Runs commands side by side; kills them all if any outlives the timeout."""
    base_env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="",
        PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]),
    )
    base_env.pop("TF_CONFIG", None)
    processes = [
        subprocess.Popen(
            argv,
            env={**base_env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for argv, env in zip(argv_list, env_list, strict=True)
    ]
    try:
        outputs = [process.communicate(timeout=PROCESS_TIMEOUT_S)[0] for process in processes]
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
            process.communicate()
        pytest.fail(f"{argv_list[0][:4]} outlived {PROCESS_TIMEOUT_S} s; its processes were killed")
    return [(process.returncode, output) for process, output in zip(processes, outputs, strict=True)]


def toy_flags(toy_tfds: str, *more: str) -> list[str]:
    """Training flags on the toy TFDS dataset, then `more`."""
    return ["--dataset", "toy_cohort/tiny", "--data_dir", toy_tfds, *more]


def train_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "brainage_tf.train", *args]


def run_two_workers(command: list[str], attempts: int = 3) -> list[tuple[int, str]]:
    """Runs command as a 2-worker TF_CONFIG cluster on loopback, retrying if a port was taken meanwhile."""
    for _ in range(attempts):
        cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
        envs = [
            {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
            for index in range(2)
        ]
        results = run_processes([command, command], envs)
        if not any("already in use" in output or "Failed to bind" in output for _, output in results):
            return results
    return results


def epoch_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("epoch ")]


# --- flags -------------------------------------------------------------------------------------


def test_presets_fill_unset_flags_and_explicit_flags_win():
    paper = flags.config_from_args(flags.build_parser().parse_args(["--preset", "paper"]))
    assert (paper.epochs, paper.batch_size, paper.validation_fraction) == (60, 1, 0.0)
    assert (paper.learning_rate, paper.halve_every_epochs) == (1e-4, 15)
    assert paper.slice_size == (50, 50) and paper.width_multiplier == 1.0
    demo = train.config_from_args(
        train.build_parser().parse_args(
            ["--epochs", "3", "--train-ages", "0", "6", "--validation-fraction", "0"]
        )
    )
    assert demo.preset == "demo" and demo.epochs == 3 and demo.batch_size == 8
    assert (demo.min_age, demo.max_age, demo.validation_fraction) == (0.0, 6.0, 0.0)


def test_unknown_model_exits_with_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--model", "vgg16"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'vgg16'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--train-ages", "10", "5"], "minimum age 10.0 is above maximum age 5.0"),
        (["--dataset", "no_such_cohort/small"], "unknown TFDS dataset 'no_such_cohort/small'"),
        (["--validation-fraction", "1.5"], "--validation-fraction"),
        (["--calibration-fraction", "1"], "--calibration-fraction must be in [0, 1), got 1.0"),
        (["--calibration-seed", "-1"], "--calibration-seed must be at least 0, got -1"),
        (["--epochs", "0"], "epochs must be at least 1"),
    ],
)
def test_bad_flags_exit_with_one_line_before_any_work(flags, message, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train.main([*flags, "--data_dir", str(tmp_path / "tfds"), "--out", str(run_dir)]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_age_range_selecting_no_subject_exits(toy_tfds, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = train.main(toy_flags(toy_tfds, "--train-ages", "30", "40", "--out", str(run_dir)))
    assert code == 2
    assert "ages 30.0-40.0 select no example of toy_cohort/tiny:train" in capsys.readouterr().err
    assert not run_dir.exists()


def test_train_subjects_lists_who_trains_and_an_unknown_or_empty_list_is_one_line(toy_tfds, tmp_path, capsys):
    listing = tmp_path / "site.txt"
    listing.write_text("# my site\nsub-001\nsub-002  # scanned twice\n\nsub-001\n")
    args = flags.build_parser().parse_args(["--train-subjects", str(listing)])
    assert flags.config_from_args(args).train_subjects == ("sub-001", "sub-002")
    listing.write_text("sub-0001\nsub-0999\nghost\n")
    run_dir = tmp_path / "run"
    code = train.main(toy_flags(toy_tfds, "--train-subjects", str(listing), "--out", str(run_dir)))
    error = capsys.readouterr().err
    assert code == 2 and len(error.strip().splitlines()) == 1, error
    assert (
        "--train-subjects: 2 of the 3 listed subjects are not in toy_cohort/tiny:train, e.g. ghost, sub-0999"
        in error
    )
    assert not run_dir.exists()
    listing.write_text("# nobody\n")
    assert train.main(toy_flags(toy_tfds, "--train-subjects", str(listing), "--out", str(run_dir))) == 2
    assert "lists no subject id" in capsys.readouterr().err


def test_volumes_too_small_for_the_model_exit(toy_tfds, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = train.main(toy_flags(toy_tfds, "--slice-size", "20", "20", "--out", str(run_dir)))
    assert code == 2
    assert "too small for ResNet18" in capsys.readouterr().err
    assert not run_dir.exists()


def test_a_dataset_without_a_preprocessing_record_is_refused_with_the_rebuild_command(tmp_path, capsys):
    data_dir = tmp_path / "tfds"
    folder = store_toy_tfds(
        data_dir, "toy_old", TOY_SHAPE, {"train": toy_cohort(8, TOY_SHAPE)}, with_record=False
    )
    capsys.readouterr()  # the dataset writer's own progress bars
    run_dir = tmp_path / "run"
    assert train.main(["--dataset", "toy_old/tiny", "--data_dir", str(data_dir), "--out", str(run_dir)]) == 2
    error = capsys.readouterr().err
    assert (
        len(error.strip().splitlines()) == 1
        and f"'toy_old/tiny' in {folder}: it has no preprocessing record" in error
    )
    assert f"rebuild it: `tfds build tfds_builders/toy_old --config tiny --data_dir {data_dir}`" in error
    assert not run_dir.exists()


def test_existing_run_dir_is_never_overwritten(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "history.csv").write_text("precious\n")
    assert train.main(["--out", str(run_dir)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (run_dir / "history.csv").read_text() == "precious\n"
    assert train.main(["--out", str(tmp_path / "other"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


# --- the command line end to end ----------------------------------------------------------------


def test_command_line_run_writes_a_complete_run_directory_and_resumes(toy_tfds, tmp_path, capsys):
    import keras

    run_dir = tmp_path / "run"
    assert (
        train.main(toy_flags(toy_tfds, "--out", str(run_dir), "--strategy", "one_device", *TINY_FLAGS)) == 0
    )
    assert {path.name for path in run_dir.iterdir()} >= {
        "config.json",
        "history.csv",
        "results.json",
        "best_model.keras",
        "checkpoints",
        "tensorboard",
    }
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"] == "toy_cohort/tiny" and config["epochs"] == 1
    assert config["preprocessing"] == toy_record(TOY_SHAPE)  # copied from the dataset's metadata
    assert any((run_dir / "tensorboard").iterdir())
    model = keras.models.load_model(run_dir / "best_model.keras")
    assert model.input.shape == (None, *TOY_SHAPE, 1)
    assert train.main(["--out", str(run_dir), "--resume", "--epochs", "2"]) == 0
    assert [row["epoch"] for row in RunDirectory(run_dir).read_history()] == ["1", "2"]
    output = capsys.readouterr().out
    # Not a terminal: one line per epoch, no progress bar.
    assert len(epoch_lines(output)) == 2 and "\r" not in output
    assert tensorboard_scalars(run_dir / "tensorboard") == {
        tag: [
            (int(row["epoch"]), pytest.approx(float(row[tag]), abs=1e-6))
            for row in RunDirectory(run_dir).read_history()
        ]
        for tag in ("train_mae", "val_mae", "learning_rate")
    }


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """(step, value) per tag, as TensorBoard's own reader finds them for its scalars dashboard."""
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator

    events = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.TENSORS: 0})
    events.Reload()
    return {
        tag: [(event.step, float(tf.make_ndarray(event.tensor_proto))) for event in events.Tensors(tag)]
        for tag in events.Tags()[event_accumulator.TENSORS]
        if events.SummaryMetadata(tag).plugin_data.plugin_name == "scalars"
    }


def test_main_job_without_arguments_builds_the_embedded_cohort_then_trains(tmp_path, monkeypatch, capfd):
    """The no-argument path at tiny size: a 14-subject synthetic cohort and a 2-epoch demo."""
    from tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder import Builder, SyntheticConfig

    tiny_cohort = SyntheticConfig(
        name="tiny_main",
        grid="tiny",
        registration="none",
        discovery_subjects=12,
        replication_subjects=2,
        voxel_scale=3.9,
        generator_workers=1,
    )
    monkeypatch.setitem(Builder.builder_configs, "tiny_main", tiny_cohort)
    monkeypatch.setattr(flags, "DEFAULT_DATASET", "synthetic_cohort/tiny_main")
    monkeypatch.setitem(PRESETS, "demo", tiny_demo)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.chdir(tmp_path)

    assert train.main([]) == 0
    output, errors = capfd.readouterr()
    lines = output.splitlines()
    # Beam's INFO logs, from this process and its worker processes, stay hidden without --verbose.
    assert "INFO:apache_beam" not in errors and "Pipeline_options" not in errors
    assert lines[0].startswith("building the embedded synthetic_cohort/tiny_main dataset")
    assert any(line.startswith("generating the discovery cohort: 12 subjects") for line in lines)
    assert any(line.startswith("14 rows in, 14 examples written, 0 skipped") for line in lines)
    assert len(epoch_lines(output)) == 2
    assert lines[-4].startswith("done in ") and "best validation MAE" in lines[-4]
    run_dir = Path(lines[-3].removeprefix("run directory: "))
    assert run_dir.parent == tmp_path / "runs" and (run_dir / "best_model.keras").is_file()
    # Training ends with a calibrated export for serving.
    export_dir = run_dir / "export" / "1"
    assert (
        lines[-1]
        == f"  export for serving: {export_dir} (python -m brainage_tf.predict --model {export_dir} ...)"
    )
    asset = json.loads((run_dir / "export" / "1" / "assets" / METADATA_ASSET).read_text())
    assert asset["grid"] == "tiny" and asset["bias_correction"]["slope"] != 0
    # The builder's record, through config.json into the export.
    recorded = json.loads((run_dir / "config.json").read_text())["preprocessing"]
    assert asset["preprocessing"] == recorded and (recorded["grid"], recorded["registration"]) == (
        "tiny",
        "none",
    )
    assert asset["reference"]["age"][0] >= 0 and asset["conformal"]["level"] == 0.9
    # A second run finds the dataset prepared and goes straight to training (export tested above).
    assert train.main(["--no-export"]) == 0
    assert "building the embedded" not in capfd.readouterr().out


# --- tf.distribute --------------------------------------------------------------------------------


def test_mirrored_on_two_logical_cpus(toy_tfds, tmp_path):
    # slice_lstm under mirrored is test_training's probe (the one-device update) and multi-worker below.
    run_dir = tmp_path / "run"
    command_flags = toy_flags(
        toy_tfds, "--model", "resnet3d", "--strategy", "mirrored", "--logical-cpus", "2"
    )
    [(code, output)] = run_processes(
        [train_command(*command_flags, "--out", str(run_dir), *TINY_FLAGS)], [None]
    )
    assert code == 0, output
    results = json.loads((run_dir / "results.json").read_text())
    assert results["replicas"] == 2 and results["global_batch_size"] == 4
    assert len(RunDirectory(run_dir).read_history()) == 1


@pytest.mark.slow
def test_multi_worker_with_two_local_processes(toy_tfds, tmp_path):
    # The loop is model-agnostic and resnet3d is covered under mirrored; slice_lstm keeps this fast.
    run_dir = tmp_path / "run"
    command_flags = toy_flags(toy_tfds, "--strategy", "multi_worker", "--out", str(run_dir), *TINY_FLAGS)
    results = run_two_workers(train_command(*command_flags))
    for code, output in results:
        assert code == 0, output
    chief_results = json.loads((run_dir / "results.json").read_text())
    assert chief_results["replicas"] == 2 and chief_results["global_batch_size"] == 4
    assert (run_dir / "best_model.keras").is_file() and len(RunDirectory(run_dir).read_history()) == 1
    worker_dir = tmp_path / "run-worker1"
    # The other worker keeps its own checkpoints (for resume) but writes no history or model.
    assert (worker_dir / "checkpoints" / "checkpoint").is_file()
    assert not (worker_dir / "history.csv").exists() and not (worker_dir / "best_model.keras").exists()
    # Both workers trained the same replicated model: identical validation MAE per epoch.
    chief_lines, worker_lines = (epoch_lines(output) for _, output in results)
    assert len(chief_lines) == 1
    assert [line.split("val MAE")[1].split()[0] for line in chief_lines] == [
        line.split("val MAE")[1].split()[0] for line in worker_lines
    ]
