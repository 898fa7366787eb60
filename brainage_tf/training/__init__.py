"""The training core behind `python -m brainage_tf.train`.

- `config`: TrainConfig and the named presets (no TensorFlow import).
- `flags`: the command-line flags and how they fill a TrainConfig (no TensorFlow import).
- `distribute`: the tf.distribute strategy and this process's worker role.
- `run_directory`: every file a run writes, and the chief-only rule.
- `trainer`: build, step, evaluate, fit (imports TensorFlow and Keras).
- `train_lib`: `train(config, run_dir) -> TrainingResult`, the one function the driver and
  the pipelines' Trainer call (dataset preparation, fit, calibration, export).
"""
