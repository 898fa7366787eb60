"""Evaluation of trained runs: the paper's tables and figures, bias correction, intervals, OOD flags.

- `metrics`: MAE per age group and the cumulative score of He et al. (ISBI 2020), and more.
- `calibration`: linear bias correction and split-conformal prediction intervals.
- `held_out`: which validation subjects each is fitted on (intervals: only those that did
  not pick the epoch).
- `ood`: out-of-distribution flags against the training scans' ranges.
- `plots`, `report`: the PNG figures and report.md.
- `inference`: a run's model over a dataset split (imports TensorFlow).
- `run_evaluation`: one run on one split, behind `python -m brainage_tf.evaluate`.

Only `inference`, `held_out` (through `brainage_tf.data`) and `run_evaluation` import TensorFlow.
"""
