"""Ages of scans on disk with an export, one row per scan, to memory or to a resumable CSV.

Every scan is fed to `serving_default` alone, as a batch of one, so its row does
not depend on which other scans finished beside it: a resumed run, whose scans
finish in another order, writes the same ages as an uninterrupted one. It costs
little: on the paper grid a volume takes 0.134 s at batch 1 and 0.138 s at batch 8
in float32, 0.131 s and 0.096 s in bfloat16 (`benchmarks/run.py`, README), against
about 0.9 s per scan for predict end to end, preprocessing included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from brainage_tf.errors import ScanError
from brainage_tf.preprocessing import PreprocessedScan
from brainage_tf.serving.batch import BASE_COLUMNS, SCAN_COLUMNS, RowList, run_batch, run_resumable
from brainage_tf.serving.exported_model import ExportedModel, model_input
from brainage_tf.serving.journal import ResultJournal
from brainage_tf.serving.scans import ScanItem

TOOL = "brainage_tf.predict"
# Called with (index, item, preprocessed scan) after a scan is predicted: the report's montage.
ScanHook = Callable[[int, ScanItem, PreprocessedScan], None]


# What an export with normative centiles adds to a row whose age is known (empty otherwise).
NORM_COLUMNS = ("corrected_brain_age_gap", "gap_z", "gap_centile")


def prediction_columns(model: ExportedModel) -> list[str]:
    """The CSV columns: base columns, the export's optional outputs and centiles, then scan columns."""
    norms = NORM_COLUMNS if model.normative is not None else ()
    return [*BASE_COLUMNS, *model.outputs, *norms, *SCAN_COLUMNS]


class Predictor:
    """The handler of `run_batch` that predicts one preprocessed scan."""

    def __init__(self, model: ExportedModel, on_scan: ScanHook | None = None):
        self.model, self.on_scan = model, on_scan

    def __call__(self, index: int, item: ScanItem, scan: PreprocessedScan) -> dict:
        """The row's fields: predicted age, the export's optional outputs, the out-of-distribution flag.

        Raises:
            ScanError: The preprocessed volume is not on the export's grid (never fed silently).
        """
        model = self.model
        volume = model_input(scan)
        if volume.shape != model.grid_shape:
            raise ScanError(item.path, f"volume {volume.shape} is not the export's grid {model.grid_shape}")
        outputs = model.predict(volume[np.newaxis])
        predicted = float(outputs["predicted_age"][0])
        fields = {"predicted_age": predicted, **{name: float(outputs[name][0]) for name in model.outputs}}
        if item.age is not None:
            fields.update(model.gap_norms(predicted, item.age))
        if model.reference is not None:
            reason = model.ood_reason(predicted, volume, scan.metadata.registration_ncc)
            fields.update(ood=bool(reason), ood_reason=reason)
        if self.on_scan is not None:
            self.on_scan(index, item, scan)
        return fields


def predict_items(
    model: ExportedModel, items: Sequence[ScanItem], workers: int = 0, progress: bool = False
) -> list[dict]:
    """One row (dict of Python values) per item, in order; failed scans get status "failed" and a reason."""
    rows = RowList()
    predictor = Predictor(model)
    keys = run_batch(items, model.preprocess_config, predictor, rows, workers, progress=progress)
    return [rows.finished[key] for key in keys]


def provenance(model: ExportedModel, tool: str, settings: dict | None = None) -> dict:
    """What an output records about the export that wrote it."""
    return {
        "tool": tool,
        "export": str(model.path),
        "export_fingerprint": model.fingerprint,
        "settings": settings or {},
        # The export's record of its training data's preprocessing, which every scan went through.
        "preprocessing": model.metadata.get("preprocessing"),
        "package_version": model.metadata.get("package_version"),
    }


def predict_to_csv(
    model: ExportedModel,
    items: Sequence[ScanItem],
    out: Path,
    workers: int,
    resume: bool = False,
    progress: bool = False,
    on_scan: ScanHook | None = None,
) -> dict[str, int]:
    """Predicts the items into `out`, each row on disk as it finishes; see `brainage_tf.serving.journal`.

    `on_scan` sees each predicted scan's preprocessed volume (the report draws its montage).

    Returns:
        {"rows", "ok", "failed"} of the written CSV.

    Raises:
        UsageError: `out` exists without `resume`, or was written with another export.
        Interrupted: SIGINT or SIGTERM inside `signals_interrupt()`; the finished rows stay in
            `out`'s partial file for a resume.
    """
    journal = ResultJournal(out, prediction_columns(model), provenance(model, TOOL), resume)
    return run_resumable(
        journal, items, model.preprocess_config, Predictor(model, on_scan), workers, progress=progress,
        description="predict",
    )  # fmt: skip
