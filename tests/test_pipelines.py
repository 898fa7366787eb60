"""The brain-age pipeline on kfp.local at tiny size: end to end, reuse, failure, each component alone, YAML.

One pipeline run (module fixture) builds a 12 + 4 subject synthetic cohort on the
tiny grid, trains one epoch of an eighth-width slice_lstm, evaluates and pushes it;
every other test reuses its store, so only the work a test is about runs again.
"""

import hashlib
import json
import re
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from toy_data import TINY_RUN_FLAGS

from brainage_tf.ingest.direct_runner import TESTED_BEAM
from brainage_tf.serving.metadata import METADATA_ASSET
from pipelines import compile as compile_cli
from pipelines import run
from pipelines.components import DEFAULT_IMAGE

REPOSITORY = Path(__file__).resolve().parent.parent

# The embedded builder's tiny grid with few, coarsely generated subjects, so the build takes seconds.
TINY_CONFIG = json.dumps(
    {"name": "tiny_pipe", "grid": "tiny", "registration": "none", "discovery_subjects": 12,
     "replication_subjects": 4, "voxel_scale": 3.9, "generator_workers": 1}
)  # fmt: skip
TINY_TRAINING = [*TINY_RUN_FLAGS, "--epochs", "1"]
# A tiny one-epoch model is far from the demo's 1.2 y, so the bar for the blessing is low.
MAX_MAE = "30"


def pipeline_args(out: Path, *more: str, train=TINY_TRAINING, max_mae=MAX_MAE) -> list[str]:
    return ["--local", "--out", str(out), "--config", TINY_CONFIG, "--train-args", shlex.join(train),
            "--max-mae", max_mae, *more]  # fmt: skip


def latest_run(out: Path) -> Path:
    return sorted((out / "kfp_runs").iterdir())[-1]


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file below root (hashlib, not the code under test)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """`python -m pipelines.run --local` once from scratch: (out folder, task -> output -> metadata)."""
    out = tmp_path_factory.mktemp("pipeline")
    assert run.main(pipeline_args(out)) == 0
    return out, run.read_run(latest_run(out))


@pytest.mark.slow
def test_end_to_end_local_run_builds_trains_evaluates_and_pushes(first_run):
    out, outputs = first_run
    examples = outputs["example-gen"]["examples"]
    model = outputs["trainer"]["model"]
    metrics, report, blessing = (outputs["evaluator"][name] for name in ("metrics", "report", "blessing"))
    pushed = outputs["pusher"]["pushed_model"]
    every = [examples, model, metrics, report, blessing, pushed]
    assert [meta["component"] for meta in every] == ["ExampleGen", "Trainer", *["Evaluator"] * 3, "Pusher"]
    assert not any(meta["reused"] for meta in every)
    assert all(len(meta["fingerprint"]) == 64 and len(meta["content_fingerprint"]) == 64 for meta in every)
    # Parameters as given, and each input named by the content fingerprint of the artifact it read.
    assert examples["parameters"] == {"builder": "synthetic_cohort", "config": TINY_CONFIG, "manual_dir": ""}
    assert model["parameters"] == {"model": "slice_lstm", "preset": "demo", "train_args": TINY_TRAINING}
    assert blessing["parameters"] == {"split": "test", "max_mae": 30.0}
    assert model["inputs"] == {"examples": examples["content_fingerprint"]}
    assert blessing["inputs"]["model"] == model["content_fingerprint"]
    assert pushed["inputs"] == {
        "model": model["content_fingerprint"],
        "blessing": blessing["content_fingerprint"],
    }

    assert examples["dataset"] == "synthetic_cohort/tiny_pipe"
    summary = examples["ingest_summary"]
    assert (summary["rows_in"], summary["examples_written"], summary["skipped"]) == (16, 16, 0)
    assert (
        examples["splits"]["replication"] == 4
        and examples["splits"]["train"] + examples["splits"]["test"] == 12
    )
    assert model["config"]["epochs"] == 1 and model["config"]["dataset"] == "synthetic_cohort/tiny_pipe"
    assert 0 < model["best_val_mae"] < 30
    assert blessing["blessed"] is True and blessing["reasons"] == []
    assert metrics["split"] == "test" and metrics["n"] == examples["splits"]["test"]

    store = out / "store"
    # The MAE blessed is that of the evaluation's own predictions, recomputed here with pandas.
    predicted = pd.read_csv(store / "Evaluator" / blessing["fingerprint"] / "eval" / "predictions.csv")
    assert len(predicted) == metrics["n"]
    assert blessing["mae"] == pytest.approx((predicted.predicted_age - predicted.age).abs().mean(), abs=1e-5)
    assert "| Average |" in (store / "Evaluator" / blessing["fingerprint"] / "eval" / "report.md").read_text()
    assert (pushed["pushed"], pushed["version"]) == (True, 1)
    version = out / "serving" / "1"
    assert (version / "saved_model.pb").is_file()
    assert (
        json.loads((version / "push.json").read_text())["model_fingerprint"] == model["content_fingerprint"]
    )
    served = json.loads((version / "assets" / METADATA_ASSET).read_text())
    assert (served["dataset"], served["grid"]) == ("synthetic_cohort/tiny_pipe", "tiny")
    assert served["bias_correction"] is not None  # the Evaluator's calibration went into the export


@pytest.mark.slow
def test_a_second_run_reexecutes_nothing(first_run):
    out, outputs = first_run
    before = tree_digest(out / "store"), tree_digest(out / "serving")
    assert run.main(pipeline_args(out)) == 0
    again = run.read_run(latest_run(out))
    for task in run.TASKS:
        for name, meta in again[task].items():
            assert meta["reused"] is True, (task, name)
            assert meta["fingerprint"] == outputs[task][name]["fingerprint"]
    assert (tree_digest(out / "store"), tree_digest(out / "serving")) == before


@pytest.mark.slow
def test_a_max_mae_no_model_meets_reruns_only_evaluator_and_pusher_and_pushes_nothing(first_run, tmp_path):
    """The pipeline again on the first run's store: a changed max_mae reruns only what depends on it.

    Into a serving folder where another model serves (the first run's export, relabelled), so a
    Pusher that ignored the blessing would add version 2 rather than find its model already there.
    """
    out, outputs = first_run
    serving = tmp_path / "serving"
    shutil.copytree(out / "serving" / "1", serving / "1")
    record = json.loads((serving / "1" / "push.json").read_text())
    (serving / "1" / "push.json").write_text(json.dumps({**record, "model_fingerprint": "another model"}))
    before = tree_digest(serving), tree_digest(out / "serving")
    assert run.main(pipeline_args(out, "--serving-dir", str(serving), max_mae="0")) == 0
    again = run.read_run(latest_run(out))
    state = {task: next(iter(again[task].values()))["reused"] for task in run.TASKS}
    assert state == {"example-gen": True, "trainer": True, "evaluator": False, "pusher": False}
    assert again["trainer"]["model"]["fingerprint"] == outputs["trainer"]["model"]["fingerprint"]
    blessing = again["evaluator"]["blessing"]
    assert blessing["parameters"]["max_mae"] == 0.0 and blessing["blessed"] is False
    assert blessing["reasons"] == [f"MAE {blessing['mae']:.3f} y is above the maximum 0 y"]
    assert blessing["baseline_version"] == 1  # compared with the relabelled version, and no worse
    decision = again["pusher"]["pushed_model"]
    assert (decision["pushed"], decision["version"]) == (False, None)
    assert decision["reason"] == f"not blessed: {blessing['reasons'][0]}"
    assert (tree_digest(serving), tree_digest(out / "serving")) == before


@pytest.mark.slow
def test_a_failing_trainer_stops_the_run_and_leaves_the_pushed_model_untouched(first_run, capsys):
    out, _ = first_run
    serving_before, store_before = tree_digest(out / "serving"), tree_digest(out / "store")
    too_big_batch = [*TINY_TRAINING, "--batch-size", "64"]
    assert run.main(pipeline_args(out, train=too_big_batch)) == 1
    error = capsys.readouterr().err.splitlines()
    assert error[-2] == (
        "python -m pipelines.run: error: Trainer failed: training refused: "
        "7 training examples are fewer than one global batch of 64; lower --batch-size."
    )
    assert error[-1] == f"the pipeline stopped there; earlier outputs are kept in {out / 'store'}"
    failed = latest_run(out)
    assert not (failed / "evaluator").exists() and not (failed / "pusher").exists()
    assert tree_digest(out / "serving") == serving_before
    assert tree_digest(out / "store") == store_before  # no partial run dir, no record, nothing else touched


def run_alone(root: Path, component, imported: dict, **parameters) -> dict[str, dict]:
    """Runs one component in a pipeline of its own, its input artifacts brought in by dsl.importer.

    kfp.local takes no artifact arguments in a bare component call; importing existing
    artifacts is how KFP runs a component on them. Returns output name -> metadata.
    """
    from kfp import dsl

    @dsl.pipeline(name="alone")
    def alone():
        inputs = {
            name: dsl.importer(artifact_uri=uri, artifact_class=kind, metadata=metadata).output
            for name, (kind, uri, metadata) in imported.items()
        }
        component(**inputs, **parameters)

    alone()
    task = component.component_spec.name.replace("_", "-")
    return run.read_run(sorted(root.glob("alone-*"))[-1])[task]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*non-Python base image:RuntimeWarning")  # the image is for clusters
def test_each_component_alone(first_run, tmp_path):
    """Each component on its own, outside the pipeline, on the first run's artifacts."""
    from kfp import dsl, local

    from pipelines.components import evaluator, example_gen, pusher, trainer

    out, outputs = first_run
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"))
    store = out / "store"
    examples = example_gen(
        store_dir=str(store), builder="synthetic_cohort", config=TINY_CONFIG, manual_dir="",
        beam_pipeline_options="",
    ).outputs["examples"]  # fmt: skip
    assert examples.metadata == {**outputs["example-gen"]["examples"], "reused": True}
    assert examples.path == str(store / "ExampleGen" / examples.metadata["fingerprint"])

    imported_examples = (dsl.Dataset, examples.path, outputs["example-gen"]["examples"])
    model = run_alone(
        tmp_path / "kfp", trainer, {"examples": imported_examples}, store_dir=str(store),
        model_name="slice_lstm", preset="demo", train_args=TINY_TRAINING,
    )["model"]  # fmt: skip
    assert model == {**outputs["trainer"]["model"], "reused": True}

    # Evaluated on another split: new work. The serving dir holds the same weights pushed as "another"
    # model, so the pushed-model comparison runs through the export and must find the same MAE.
    relabelled = tmp_path / "relabelled"
    shutil.copytree(out / "serving" / "1", relabelled / "1")
    record = json.loads((relabelled / "1" / "push.json").read_text())
    (relabelled / "1" / "push.json").write_text(json.dumps({**record, "model_fingerprint": "another model"}))
    imported_model = (dsl.Model, str(store / "Trainer" / model["fingerprint"]), model)
    evaluation = run_alone(
        tmp_path / "kfp", evaluator, {"model": imported_model, "examples": imported_examples},
        store_dir=str(store), split="replication", max_mae=30.0, serving_dir=str(relabelled),
    )  # fmt: skip
    blessing = evaluation["blessing"]
    assert blessing["reused"] is False and blessing["split"] == "replication"
    assert blessing["inputs"]["baseline"] == "another model" and blessing["baseline_version"] == 1
    assert blessing["baseline_mae"] == pytest.approx(blessing["mae"], abs=1e-4)
    assert evaluation["metrics"]["n"] == 4 and evaluation["metrics"]["mae"] == blessing["mae"]
    verdict = "BLESSED" if blessing["blessed"] else "NOT_BLESSED"
    assert (store / "Evaluator" / blessing["fingerprint"] / "blessing" / verdict).is_file()

    # The first run's blessing (test split) pushed into a serving dir that has versions 1 and 2.
    serving = tmp_path / "serving"
    (serving / "1").mkdir(parents=True)
    (serving / "2").mkdir()
    first_blessing = outputs["evaluator"]["blessing"]
    blessing_folder = store / "Evaluator" / first_blessing["fingerprint"] / "blessing"
    imported_blessing = (dsl.Artifact, str(blessing_folder), first_blessing)
    decision = run_alone(
        tmp_path / "kfp", pusher, {"model": imported_model, "blessing": imported_blessing},
        store_dir=str(store), serving_dir=str(serving),
    )["pushed_model"]  # fmt: skip
    assert (decision["pushed"], decision["version"]) == (True, 3)
    assert (serving / "3" / "saved_model.pb").is_file() and not any((serving / "2").iterdir())


def test_the_compiled_yaml_names_the_four_components_in_order(tmp_path, capsys):
    assert compile_cli.main(["--out", str(tmp_path / "pipeline.yaml")]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'pipeline.yaml'}")
    spec = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())
    assert spec["pipelineInfo"]["name"] == "brain-age"
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == ["evaluator", "example-gen", "pusher", "trainer"]
    assert tasks["trainer"]["dependentTasks"] == ["example-gen"]
    assert sorted(tasks["evaluator"]["dependentTasks"]) == ["example-gen", "trainer"]
    assert sorted(tasks["pusher"]["dependentTasks"]) == ["evaluator", "trainer"]
    executors = spec["deploymentSpec"]["executors"]
    assert sorted(executors) == ["exec-evaluator", "exec-example-gen", "exec-pusher", "exec-trainer"]
    for executor in executors.values():  # the image holds the package: nothing is installed at run time
        assert "pip install" not in " ".join(executor["container"]["command"])
        assert executor["container"]["image"] == "{{$.inputs.parameters['pipelinechannel--image']}}"


def test_the_kfp_yaml_the_dockerfile_and_the_docs_name_one_image(tmp_path):
    """kfp's components and the ingest's Beam workers run one image: pipelines.components.DEFAULT_IMAGE."""
    assert compile_cli.main(["--out", str(tmp_path / "pipeline.yaml")]) == 0
    spec = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())
    assert spec["root"]["inputDefinitions"]["parameters"]["image"]["defaultValue"] == DEFAULT_IMAGE
    texts = {path: path.read_text() for path in [REPOSITORY / "Dockerfile", REPOSITORY / "README.md",
                                                 *sorted((REPOSITORY / "docs").glob("*.md"))]}  # fmt: skip
    named = {image for text in texts.values() for image in re.findall(r"[\w./-]*brainage-tf:[\w.]+", text)}
    assert named == {f"REGISTRY/{DEFAULT_IMAGE}"}
    ingest, dockerfile = texts[REPOSITORY / "docs" / "ingest.md"], texts[REPOSITORY / "Dockerfile"]
    assert f"sdk_container_image=REGISTRY/{DEFAULT_IMAGE}" in ingest  # Dataflow's workers
    assert f"REGISTRY/{DEFAULT_IMAGE} --worker_pool" in ingest  # Flink's worker pools
    assert f"docker build -t REGISTRY/{DEFAULT_IMAGE} ." in dockerfile
    # The image's Beam worker launcher is the Beam release the DirectRunner fix was tested on.
    assert re.search(r"apache/beam_python3\.11_sdk:(\S+)", dockerfile).group(1) in TESTED_BEAM


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--out", "x"], "only --local runs here"),
        (["--local", "--out", "x", "--train-args", '--epochs "5'], "--train-args: No closing quotation"),
    ],
)
def test_run_usage_errors_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]
