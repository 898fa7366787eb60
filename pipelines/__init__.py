"""TFX-style pipelines on plain Beam (TFX itself cannot install beside TF 2.21 here).

The stages exist as modules today: ExampleGen is a TFDS builder in
`tfds_builders/` (run with `tfds build`), Trainer is `python -m brainage_tf.train`.
The Evaluator (MAE by age group, CS(alpha)) and Pusher (SavedModel) stages, and
the pipeline that chains them for the paper's discovery/replication protocol,
come with the evaluation and export work.
"""
