"""Predict brain ages of T1 scans with an export: `python -m brainage_tf.predict --model EXPORT_DIR ...`.

    python -m brainage_tf.predict --model runs/X/export/1 scan1.nii.gz scan2.nii.gz --out predictions.csv
    python -m brainage_tf.predict --model runs/X/export/1 --bids BIDS_DIR --out predictions.csv
    python -m brainage_tf.predict --model runs/X/export/1 --manifest scans.csv --out predictions.csv

The export's `assets/brainage_metadata.json` names the grid and the registration the
model was trained with; every scan goes through the same
`brainage_tf.preprocessing.preprocess_scan` (brain_mask False) as the TFDS builders,
in parallel processes, is rounded to the builders' stored dtype, and the volumes are
fed to `serving_default` in batches of 8. Each row carries the out-of-distribution
flag against the training scans' ranges that the export carries. A scan that cannot
be preprocessed gets a "failed" row with its reason; the exit code is 1 when any scan
failed, 0 otherwise, 2 for a usage error. See docs/serving.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from brainage_tf.defaults import STORED_VOLUME_DTYPE
from brainage_tf.evaluation.ood import ReferenceRanges
from brainage_tf.preprocessing import GRIDS, PreprocessConfig, ScanError
from brainage_tf.training.config import UsageError

METADATA_ASSET = "brainage_metadata.json"  # as brainage_tf.export writes it
BATCH_SIZE = 8
OPTIONAL_OUTPUTS = ("corrected_predicted_age", "interval_low", "interval_high")
BASE_COLUMNS = ("path", "subject_id", "session", "age", "predicted_age", "brain_age_gap")
SCAN_COLUMNS = ("non_finite_voxels", "registration_ncc", "ood", "ood_reason", "status", "reason")
OK, FAILED = "ok", "failed"
T = TypeVar("T")


@dataclass(frozen=True)
class ScanItem:
    """One scan to predict: its path and, when known, subject, session and age."""

    path: str
    subject_id: str = ""
    session: str = ""
    age: float | None = None


class ExportedModel:
    """A loaded export: its `serving_default` function, metadata and preprocessing config."""

    def __init__(self, export_dir: str | os.PathLike, grid: str | None = None):
        """Loads the SavedModel and checks that its metadata names a preset grid of its input shape.

        Args:
            export_dir: The `RUN_DIR/export/<version>` folder.
            grid: Grid the caller expects (None: whatever the export has).

        Raises:
            UsageError: Unreadable export or metadata, no preset grid, a grid other than
                `grid`, or an input shape that is not the grid's.
        """
        export_dir = Path(export_dir)
        asset = export_dir / "assets" / METADATA_ASSET
        if not (export_dir / "saved_model.pb").is_file():
            raise UsageError(f"{export_dir}: not a SavedModel export (no saved_model.pb)")
        try:
            self.metadata = json.loads(asset.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise UsageError(f"{asset}: unreadable export metadata ({one_line(error)})") from None
        name, shape = self.metadata.get("grid"), tuple(self.metadata.get("grid_shape") or ())
        if not name:
            raise UsageError(
                f"{export_dir}: the export's input shape {shape} is no preset grid "
                f"({', '.join(GRIDS)}); its scans cannot be preprocessed by predict"
            )
        if name not in GRIDS or GRIDS[name].shape != shape:
            raise UsageError(f"{export_dir}: export grid {name!r} does not have its input shape {shape}")
        if grid is not None and grid != name:
            raise UsageError(f"--grid {grid} differs from the export's grid {name!r}")
        registration = self.metadata.get("registration") or "none"
        try:
            self.preprocess_config = PreprocessConfig(grid=name, registration=registration, brain_mask=False)
        except ValueError as error:
            raise UsageError(f"{asset}: {one_line(error)}") from None
        self.grid_shape = shape

        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(export_dir))
            self._serve = loaded.signatures["serving_default"]
        except Exception as error:  # TF raises many types for one cause: an unreadable export
            raise UsageError(f"{export_dir}: cannot load the SavedModel ({one_line(error)})") from None
        self._loaded = loaded  # keeps the variables alive
        spec = self._serve.structured_input_signature[1].get("volume")
        if spec is None or tuple(spec.shape[1:]) != shape:
            found = None if spec is None else tuple(spec.shape)
            raise UsageError(f"{export_dir}: serving_default input {found} is not [batch, *{shape}]")
        self.outputs = [name for name in OPTIONAL_OUTPUTS if name in self._serve.structured_outputs]
        # Exports made before evaluation (or without a training split) have no ranges to flag against.
        reference = self.metadata.get("reference")
        self.reference = ReferenceRanges.from_json(reference) if reference else None

    def predict(self, volumes: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs of `serving_default` for float32 volumes [batch, x, y, z] on the export's grid."""
        volumes = np.asarray(volumes, np.float32)
        if volumes.ndim != 4 or volumes.shape[1:] != self.grid_shape:
            raise ValueError(
                f"volumes of shape {volumes.shape} do not match the export's grid {self.grid_shape}"
            )
        return {key: value.numpy() for key, value in self._serve(volume=volumes).items()}

    def age_tensor(self, volumes):
        """`predicted_age` of float32 volumes [batch, x, y, z] as a tensor `tf.GradientTape` differentiates.

        The loaded `serving_default` keeps the model's gradients, so explanation
        works from the export alone, without the run directory.
        """
        return self._serve(volume=volumes)["predicted_age"]


def one_line(error: object) -> str:
    """An error message on one line, as every bad-input message of the package is printed."""
    return " ".join(str(error).split())


def guarded(
    step: Callable[[str, PreprocessConfig], T], path: str, config: PreprocessConfig
) -> tuple[T | None, str]:
    """(step(path, config), "") or (None, one-line reason): a failure is this scan's, not the run's."""
    if not path:
        return None, "no scan file listed for this visit"
    try:
        return step(path, config), ""
    except ScanError as error:
        return None, one_line(error)
    except Exception as error:  # any other failure is this scan's, not the run's
        return None, one_line(f"{path}: {type(error).__name__}: {error}")


def model_input(scan) -> np.ndarray:
    """A preprocessed scan's float32 volume rounded to the builders' stored dtype.

    So the model gets exactly the tensor it was trained and evaluated on for the same file.
    """
    return np.asarray(scan.volume).astype(STORED_VOLUME_DTYPE).astype(np.float32)


def scan_facts(scan) -> dict:
    """The preprocessing facts a prediction row reports beside the age."""
    return {
        "non_finite_voxels": scan.metadata.non_finite_voxels,
        "registration_ncc": scan.metadata.registration_ncc,
    }


def preprocess_path(path: str, config: PreprocessConfig) -> tuple[np.ndarray | None, dict, str]:
    """(volume, scan facts, "") or (None, {}, reason) for one scan; runs in a worker process."""
    scan, reason = guarded(preprocess_scan_file, path, config)
    if scan is None:
        return None, {}, reason
    return model_input(scan), scan_facts(scan), ""


def preprocess_scan_file(path: str, config: PreprocessConfig):
    """`brainage_tf.preprocessing.preprocess_scan`, imported in the worker (nilearn loads late)."""
    from brainage_tf.preprocessing import preprocess_scan

    return preprocess_scan(path, config)


def scan_items(paths: Sequence[str], bids: str | None, manifest: str | None) -> list[ScanItem]:
    """The scans of the positional paths (no age), the BIDS folder and the manifest, in that order."""
    from brainage_tf.ingest import CohortLayoutError, read_bids, read_manifest

    items = [ScanItem(path=str(Path(path).resolve())) for path in paths]
    for reader, source in ((read_bids, bids), (read_manifest, manifest)):
        if source is None:
            continue
        try:
            records = reader(source)
        except (CohortLayoutError, OSError, ValueError) as error:
            raise UsageError(one_line(error)) from None
        items += [ScanItem(r.path, r.subject_id, r.session, r.age_years) for r in records]
    return items


def _volumes(
    items: Sequence[ScanItem], config: PreprocessConfig, workers: int
) -> Iterator[tuple[np.ndarray | None, dict, str]]:
    """(volume, scan facts, reason) of every item, in order; preprocessed by `workers` spawned processes."""
    paths = [item.path for item in items]
    if workers <= 1:
        for path in paths:
            yield preprocess_path(path, config)
        return
    # Spawned, not forked: the parent has TensorFlow loaded.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(preprocess_path, paths, [config] * len(paths))


def predict_items(
    model: ExportedModel, items: Sequence[ScanItem], workers: int = 1, progress: bool = False
) -> list[dict]:
    """One CSV row (dict) per item, in order; failed scans get status "failed" and a reason."""
    from tqdm import tqdm

    rows: list[dict] = []
    pending: list[tuple[dict, np.ndarray]] = []

    def flush():
        if not pending:
            return
        volumes = np.stack([volume for _, volume in pending])
        outputs = model.predict(volumes)
        if model.reference is not None:
            reasons = model.reference.reasons(
                outputs["predicted_age"],
                [row["registration_ncc"] for row, _ in pending],
                volumes.mean(axis=(1, 2, 3), dtype=np.float64),
                volumes.std(axis=(1, 2, 3), dtype=np.float64),
            )
        for index, (row, _) in enumerate(pending):
            predicted = float(outputs["predicted_age"][index])
            row["predicted_age"] = predicted
            if row["age"] is not None:
                row["brain_age_gap"] = predicted - row["age"]
            for name in model.outputs:
                row[name] = float(outputs[name][index])
            if model.reference is not None:
                row.update(ood=bool(reasons[index]), ood_reason=reasons[index])
        pending.clear()

    with tqdm(total=len(items), desc="predict", unit="scan", disable=not progress) as bar:
        for item, (volume, facts, reason) in zip(
            items, _volumes(items, model.preprocess_config, workers), strict=True
        ):
            row = {"path": item.path, "subject_id": item.subject_id, "session": item.session, "age": item.age}
            row.update(facts, status=OK, reason="")
            if volume is not None and volume.shape != model.grid_shape:  # never fed silently
                volume, reason = (
                    None,
                    f"{item.path}: volume {volume.shape} is not the export's grid {model.grid_shape}",
                )
            if volume is None:
                row.update(status=FAILED, reason=reason)
            else:
                pending.append((row, volume))
            rows.append(row)
            if len(pending) == BATCH_SIZE:
                flush()
            bar.update()
        flush()
    return rows


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value) if math.isinf(value) else f"{value:.6f}"
    return str(value)


def write_rows(rows: Iterable[dict], out: Path, outputs: Sequence[str]) -> None:
    """Writes the rows as CSV: the base columns, the export's optional outputs, then the scan columns."""
    columns = [*BASE_COLUMNS, *outputs, *SCAN_COLUMNS]
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in columns])


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line and exit with status 2."""

    def error(self, message):  # one line, status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = OneLineParser(prog="python -m brainage_tf.predict", description=__doc__.splitlines()[0])
    parser.add_argument("scans", nargs="*", metavar="SCAN", help="Scan files (age unknown).")
    parser.add_argument("--model", required=True, metavar="EXPORT_DIR", help="An export version folder.")
    parser.add_argument("--bids", metavar="DIR", help="BIDS folder: its T1w scans with their ages.")
    parser.add_argument(
        "--manifest", metavar="CSV", help="Manifest CSV/TSV: subject_id, age, path[, session]."
    )
    parser.add_argument("--out", required=True, type=Path, metavar="CSV", help="Predictions CSV to write.")
    default_workers = min(os.cpu_count() or 1, 4)
    parser.add_argument("--workers", type=int, default=default_workers, help="Preprocessing processes.")
    parser.add_argument("--grid", choices=tuple(GRIDS), help="Fail unless the export is on this grid.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m brainage_tf.predict`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {args.workers}")
        if not args.out.parent.is_dir():
            raise UsageError(f"--out {args.out}: folder {args.out.parent} does not exist")
        items = scan_items(args.scans, args.bids, args.manifest)
        if not items:
            raise UsageError("no scans: give SCAN paths, --bids or --manifest")
        model = ExportedModel(args.model, args.grid)
    except UsageError as error:
        print(f"{parser.prog}: error: {one_line(error)}", file=sys.stderr)
        return 2
    rows = predict_items(model, items, args.workers, progress=sys.stderr.isatty())
    write_rows(rows, args.out, model.outputs)
    failed = sum(row["status"] == FAILED for row in rows)
    print(f"{len(rows) - failed} predicted, {failed} failed: {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
