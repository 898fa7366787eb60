"""TFX-style components on Kubeflow Pipelines v2 (`kfp`): ExampleGen -> Trainer -> Evaluator -> Pusher.

TFX itself cannot install beside TF 2.21 here (ml-metadata has no wheel for this
glibc, TFMA needs pandas<3); kfp is the engine TFX compiles to for Kubeflow and
Vertex AI, and it also runs the same pipeline locally.

* `components`: the four KFP components; each calls `pipelines.<step>.run`
  (`example_gen`, `trainer`, `evaluator`, `pusher`), which calls the package's own functions.
* `store`: work fingerprints and the output store through which a component reuses its outputs.
* `brain_age_pipeline`: the pipeline; `run` (`python -m pipelines.run --local`) and
  `compile` (`python -m pipelines.compile --out pipeline.yaml`).
* `paper_experiment` (`python -m pipelines.paper_experiment`): the paper's whole protocol with
  both models in one report, built by `paper_report` (docs/paper_experiment.md).

See docs/pipelines.md.
"""
