"""The brain-age pipeline: ExampleGen -> Trainer -> Evaluator -> Pusher.

Its defaults are the main job's: the embedded synthetic cohort at the small grid,
slice_lstm with the demo preset, evaluated on the discovery test split. Run it on
this machine with `python -m pipelines.run --local`, or compile it for Kubeflow
Pipelines or Vertex AI with `python -m pipelines.compile` (docs/pipelines.md).
"""

from kfp import dsl

from brainage_tf.defaults import DEFAULT_DATASET
from brainage_tf.model_registry import DEFAULT_MODEL
from pipelines.components import DEFAULT_IMAGE, evaluator, example_gen, pusher, trainer

PIPELINE_NAME = "brain-age"
DEFAULT_BUILDER, _, DEFAULT_CONFIG = DEFAULT_DATASET.partition("/")
# The demo run's best validation MAE on synthetic_cohort/small is 1.18 y (docs/training.md);
# 3 y blesses a model clearly better than the training-mean predictor's 3.7 y.
DEFAULT_MAX_MAE = 3.0


@dsl.pipeline(
    name=PIPELINE_NAME, description="Brain age from T1 MRI: ExampleGen, Trainer, Evaluator, Pusher."
)
def brain_age_pipeline(
    store_dir: str,
    serving_dir: str,
    builder: str = DEFAULT_BUILDER,
    config: str = DEFAULT_CONFIG,
    manual_dir: str = "",
    beam_pipeline_options: str = "",
    model_name: str = DEFAULT_MODEL,
    preset: str = "demo",
    train_args: list = [],  # noqa: B006 (KFP reads the default from the signature)
    split: str = "test",
    max_mae: float = DEFAULT_MAX_MAE,
    image: str = DEFAULT_IMAGE,
):
    """ExampleGen -> Trainer -> Evaluator -> Pusher, every output kept in `store_dir` by fingerprint.

    Args:
        store_dir: Output store shared by runs (a path every task can reach).
        serving_dir: TF Serving model folder the Pusher writes versions into.
        builder: TFDS builder: synthetic_cohort, nihpd or mghbch.
        config: Builder config name, or a JSON config as `tfds build --config` takes.
        manual_dir: The cohort folder of nihpd or mghbch.
        beam_pipeline_options: `tfds build --beam_pipeline_options` text for the ingest.
        model_name: A registered model (`brainage_tf.model_registry`): slice_lstm or resnet3d.
        preset: demo or paper.
        train_args: More `python -m brainage_tf.train` flags.
        split: Split the Evaluator evaluates.
        max_mae: Largest MAE (years) the Evaluator blesses.
        image: Container image of every task on a cluster (unused by the local runner).
    """
    examples = example_gen(
        store_dir=store_dir,
        builder=builder,
        config=config,
        manual_dir=manual_dir,
        beam_pipeline_options=beam_pipeline_options,
    ).set_container_image(image)
    model = trainer(
        store_dir=store_dir,
        examples=examples.outputs["examples"],
        model_name=model_name,
        preset=preset,
        train_args=train_args,
    ).set_container_image(image)
    evaluation = evaluator(
        store_dir=store_dir,
        model=model.outputs["model"],
        examples=examples.outputs["examples"],
        split=split,
        max_mae=max_mae,
        serving_dir=serving_dir,
    ).set_container_image(image)
    pusher(
        store_dir=store_dir,
        model=model.outputs["model"],
        blessing=evaluation.outputs["blessing"],
        serving_dir=serving_dir,
    ).set_container_image(image)
