"""The four KFP components: thin lightweight Python components over `pipelines.<step>.run`.

Each component body only imports its step module and hands the stored outputs to
its KFP artifacts; the work is the package's own functions (TFDS builders,
`brainage_tf.train`, `run_evaluation`, `export_run`). `packages_to_install=[]`
and `install_kfp_package=False`: the image (or, locally, the current environment)
already has the package and kfp, so nothing is installed at run time. See docs/pipelines.md.
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from brainage_tf import __version__

# The image a cluster runs every component in: the package installed (docs/pipelines.md has a
# Dockerfile). The pipeline's `image` parameter overrides it per run.
DEFAULT_IMAGE = f"brainage-tf:{__version__}"


@dsl.component(base_image=DEFAULT_IMAGE, packages_to_install=[], install_kfp_package=False)
def example_gen(
    store_dir: str,
    builder: str,
    config: str,
    manual_dir: str,
    beam_pipeline_options: str,
    examples: Output[Dataset],
):
    """ExampleGen: builds a TFDS dataset through the package's Beam builders."""
    from brainage_tf.console import component_console
    from pipelines import example_gen as step
    from pipelines.artifacts import failure_reported, publish

    component_console()
    with failure_reported("ExampleGen", examples):
        publish(examples, step.run(store_dir, builder, config, manual_dir, beam_pipeline_options))


@dsl.component(base_image=DEFAULT_IMAGE, packages_to_install=[], install_kfp_package=False)
def trainer(
    store_dir: str,
    examples: Input[Dataset],
    model_name: str,
    preset: str,
    train_args: list,
    model: Output[Model],
):
    """Trainer: runs `python -m brainage_tf.train` on the examples; the Model is the run directory."""
    from brainage_tf.console import component_console
    from pipelines import trainer as step
    from pipelines.artifacts import failure_reported, publish

    component_console()
    with failure_reported("Trainer", model):
        publish(model, step.run(store_dir, examples.path, examples.metadata, model_name, preset, train_args))


@dsl.component(base_image=DEFAULT_IMAGE, packages_to_install=[], install_kfp_package=False)
def evaluator(
    store_dir: str,
    model: Input[Model],
    examples: Input[Dataset],
    split: str,
    max_mae: float,
    serving_dir: str,
    metrics: Output[Metrics],
    report: Output[Markdown],
    blessing: Output[Artifact],
):
    """Evaluator: the paper's evaluation on one split, and a blessing (MAE threshold, pushed model)."""
    from brainage_tf.console import component_console
    from pipelines import evaluator as step
    from pipelines.artifacts import failure_reported, publish

    component_console()
    with failure_reported("Evaluator", metrics):
        outputs = step.run(
            store_dir,
            model.path,
            model.metadata,
            examples.path,
            examples.metadata,
            split,
            max_mae,
            serving_dir,
        )
        publish(metrics, outputs["metrics"])
        publish(report, outputs["report"])
        publish(blessing, outputs["blessing"])


@dsl.component(base_image=DEFAULT_IMAGE, packages_to_install=[], install_kfp_package=False)
def pusher(
    store_dir: str,
    model: Input[Model],
    blessing: Input[Artifact],
    serving_dir: str,
    pushed_model: Output[Artifact],
):
    """Pusher: copies a blessed export into the serving folder as the next integer version."""
    from brainage_tf.console import component_console
    from pipelines import pusher as step
    from pipelines.artifacts import failure_reported, publish

    component_console()
    with failure_reported("Pusher", pushed_model):
        publish(
            pushed_model,
            step.run(store_dir, model.path, model.metadata, blessing.path, blessing.metadata, serving_dir),
        )
