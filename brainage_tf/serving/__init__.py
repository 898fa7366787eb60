"""Serving: the export of a trained run, the loaded export, and the batch work on scans on disk.

* `export`: `export_run` and `write_version`, the SavedModel with its signatures, calibration and metadata.
* `metadata`: the metadata asset's name and reader, and an export's fingerprint (light).
* `exported_model`: `ExportedModel`, a loaded export, and `model_input`.
* `scans`: `ScanItem`, the scans of paths, a BIDS folder or a manifest, their keys and folder names.
* `workers`: `PreprocessingPool`, where a dead worker costs one scan.
* `journal`: `ResultJournal`, rows on disk as scans finish, and resume.
* `batch`: `run_batch`, the runner `predict` and `explain` share, and interrupts.
* `predictions`, `explanations`: the two handlers and their entry functions.
* `beam_predict`: `predict_on_beam`, the same rows through Beam's RunInference on any runner.
* `recalibration`: `recalibrate`, a new version fitted on a site's controls, the same weights.
* `cli`: what the batch commands share on the command line.

The commands `python -m brainage_tf.export`, `predict`, `explain` and `calibrate` drive these
modules; nothing here imports a command module. Submodules import TensorFlow only
inside the functions that need it. See docs/serving.md.
"""
