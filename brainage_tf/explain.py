"""Explain predicted brain ages: `python -m brainage_tf.explain --model EXPORT_DIR SCAN ... --out DIR`.

    python -m brainage_tf.explain --model runs/X/export/1 sub-01_T1w.nii.gz --out explain/
    python -m brainage_tf.explain --model runs/X/export/1 --bids BIDS_DIR --out explain/ --samples 16

Every scan goes through the export's preprocessing (`preprocess_scan`, as predict)
and gets a folder `DIR/<scan>/` with

* `saliency_mni.nii.gz`: the saliency map on the model grid (MNI152 space);
* `saliency_native.nii.gz`: the same map resampled into the scan's own voxels;
* a JSON sidecar beside each map (method, settings, model, predicted age);
* `slab_importance.csv` and `.png`: the age change when each pooled slab of
  slices is occluded;
* `montage.png`: axial, coronal and sagittal views of the saliency over the
  preprocessed scan;

and `DIR/explain.csv` lists every scan with its predicted age, status and reason.
A scan that fails gets a "failed" row and the others go on; the exit code is 1
when any scan failed, 0 otherwise, 2 for a usage error. See docs/explain.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainage_tf.defaults import DEFAULT_POOL_SIZE, DEFAULT_SLICE_AXIS, SLICE_AXES, SLICE_AXIS_INDEX
from brainage_tf.explanation.saliency import METHODS, SaliencySettings
from brainage_tf.predict import (
    FAILED,
    OK,
    ExportedModel,
    OneLineParser,
    ScanItem,
    guarded,
    model_input,
    one_line,
    scan_facts,
    scan_items,
    write_rows,
)
from brainage_tf.preprocessing import PreprocessedScan, get_grid, preprocess_scan
from brainage_tf.training.config import UsageError

SUMMARY_CSV = "explain.csv"
EXTRA_COLUMNS = ("output_dir", "seconds")
_SCAN_SUFFIXES = re.compile(r"(\.nii\.gz|\.nii|\.mnc|\.mgz|\.mgh|\.hdr|\.img)$", re.IGNORECASE)


def slab_settings(metadata: dict, slab_axis: str | None, slab_size: int | None) -> tuple[str, int]:
    """The slabs to occlude: the flags, else the export's slice_lstm pooling, else the package defaults.

    resnet3d exports have no pooling of their own: by default they get the default
    slice_lstm's slabs, so the two models' profiles line up.

    Raises:
        UsageError: A slice_lstm export without `pool_size` in its metadata (exported
            before it was recorded) and no `--slab-size`, or slabs larger than the grid.
    """
    axis = slab_axis or metadata.get("slice_axis") or DEFAULT_SLICE_AXIS
    size = slab_size or metadata.get("pool_size")
    if size is None and metadata.get("model") == "slice_lstm":
        raise UsageError(
            "the export's metadata has no pool_size (exported before it was recorded): "
            "pass --slab-size, the run's --pool-size"
        )
    size = int(size or DEFAULT_POOL_SIZE)
    slices = metadata["grid_shape"][SLICE_AXIS_INDEX[axis]]
    if not 1 <= size <= slices:
        raise UsageError(f"--slab-size must be between 1 and the grid's {slices} {axis} slices, got {size}")
    return axis, size


def folder_names(items: Sequence[ScanItem]) -> list[str]:
    """One distinct folder name per scan: subject[_session] when known, else the file name without suffix."""
    names, used = [], set()
    for item in items:
        base = "_".join(p for p in (item.subject_id, item.session) if p)
        base = base or _SCAN_SUFFIXES.sub("", Path(item.path).name) or "scan"
        name, copy = base, 1
        while name in used:
            copy += 1
            name = f"{base}-{copy}"
        used.add(name)
        names.append(name)
    return names


def explain_scan(
    model: ExportedModel,
    item: ScanItem,
    scan: PreprocessedScan,
    settings: SaliencySettings,
    slabs: tuple[str, int],
    out_dir: Path,
) -> float:
    """Writes the maps, sidecars, slab importance and montage of one preprocessed scan; returns its age."""
    from brainage_tf.explanation import montage, occlusion
    from brainage_tf.explanation.nifti import write_map, write_scan_space_map
    from brainage_tf.explanation.saliency import saliency_map

    grid = get_grid(model.preprocess_config.grid)
    slab_axis, slab_size = slabs
    out_dir.mkdir(parents=True, exist_ok=True)
    volume = model_input(scan)  # the tensor predict feeds: rounded as the builders store it
    saliency = saliency_map(model.age_tensor, volume, settings)
    table = occlusion.slab_importance(model.age_tensor, volume, slab_axis, slab_size, grid.affine)
    predicted = float(table["predicted_age"].iloc[0])
    descrip = f"{settings.describe()} {model.metadata.get('model', '')}"
    sidecar = {
        "description": "saliency of the predicted age with respect to the preprocessed T1 volume",
        "method": settings.to_json(),
        "source": item.path,
        "predicted_age": predicted,
        "model": {
            key: model.metadata.get(key) for key in ("model", "dataset", "checkpoint", "package_version")
        },
        "grid": grid.name,
        "registration": scan.metadata.registration,
    }
    write_map(saliency, grid.affine, out_dir / "saliency_mni.nii.gz", descrip)
    mni = {**sidecar, "space": f"MNI152 2009a, {grid.describe()}"}
    (out_dir / "saliency_mni.json").write_text(json.dumps(mni, indent=2) + "\n")
    world_to_atlas = np.array(scan.metadata.world_to_atlas)
    write_scan_space_map(
        saliency, grid.affine, item.path, world_to_atlas, out_dir / "saliency_native.nii.gz", descrip
    )
    native = {
        **sidecar,
        "space": "the scan's own voxels and affine",
        "world_to_atlas": world_to_atlas.tolist(),
    }
    (out_dir / "saliency_native.json").write_text(json.dumps(native, indent=2) + "\n")
    table.to_csv(out_dir / "slab_importance.csv", index=False, float_format="%.6f")
    name = out_dir.name
    occlusion.plot_slab_importance(
        table,
        slab_axis,
        out_dir / "slab_importance.png",
        f"{name}: {model.metadata.get('model')} slab occlusion",
    )
    known = "" if item.age is None else f", age {item.age:.1f} y"
    title = f"{name}: {model.metadata.get('model')} predicts {predicted:.1f} y{known}\n{settings.describe()}"
    montage.scan_montage(volume, saliency, grid.affine, out_dir / "montage.png", title)
    return predicted


def _explain_path(model, item, settings, slabs, out_dir: Path) -> tuple[dict | None, str]:
    """(row fields, "") or (None, one-line reason) for one scan: its age, scan facts and OOD flag."""
    scan, reason = guarded(preprocess_scan, item.path, model.preprocess_config)
    if scan is None:
        return None, reason

    def explain(path, config):
        return explain_scan(model, item, scan, settings, slabs, out_dir)

    predicted, reason = guarded(explain, item.path, model.preprocess_config)
    if predicted is None:
        return None, reason
    fields = {"predicted_age": predicted, **scan_facts(scan)}
    if model.reference is not None:  # as predict flags it: an explanation of an unusual scan says so
        volume = model_input(scan)
        (ood,) = model.reference.reasons(
            [predicted],
            [fields["registration_ncc"]],
            [volume.mean(dtype=np.float64)],
            [volume.std(dtype=np.float64)],
        )
        fields.update(ood=bool(ood), ood_reason=ood)
    return fields, ""


def explain_items(
    model: ExportedModel,
    items: Sequence[ScanItem],
    settings: SaliencySettings,
    slabs: tuple[str, int],
    out: Path,
) -> list[dict]:
    """One summary row per item, in order; a scan that fails gets status "failed" and its reason."""
    rows = []
    for item, folder in zip(items, folder_names(items), strict=True):
        start = time.perf_counter()
        row = {"path": item.path, "subject_id": item.subject_id, "session": item.session, "age": item.age}
        fields, reason = _explain_path(model, item, settings, slabs, out / folder)
        if fields is None:
            row.update(status=FAILED, reason=reason)
        else:
            row.update(fields, status=OK, reason="", output_dir=folder)
            if item.age is not None:
                row["brain_age_gap"] = fields["predicted_age"] - item.age
        row["seconds"] = round(time.perf_counter() - start, 2)
        rows.append(row)
        outcome = reason or f"{row['predicted_age']:.2f} y"
        print(f"{folder}: {row['status']} {outcome} ({row['seconds']:.1f} s)")
    return rows


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    defaults = SaliencySettings()
    parser = OneLineParser(prog="python -m brainage_tf.explain", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("scans", nargs="*", metavar="SCAN", help="Scan files (age unknown).")
    add("--model", required=True, metavar="EXPORT_DIR", help="An export version folder.")
    add("--bids", metavar="DIR", help="BIDS folder: its T1w scans with their ages.")
    add("--manifest", metavar="CSV", help="Manifest CSV/TSV: subject_id, age, path[, session].")
    add("--out", required=True, type=Path, metavar="DIR", help="Output folder (created).")
    add("--method", choices=METHODS, default=defaults.method, help="Saliency method (default %(default)s).")
    add(
        "--samples",
        type=int,
        default=defaults.samples,
        help="Noisy copies or path steps (default %(default)s).",
    )
    add(
        "--noise",
        type=float,
        default=defaults.noise,
        help="SmoothGrad noise, fraction of the intensity range.",
    )
    add("--seed", type=int, default=defaults.seed, help="SmoothGrad noise seed.")
    add(
        "--slab-axis",
        choices=SLICE_AXES,
        help="Axis of the occluded slabs (default: the export's slice axis).",
    )
    add("--slab-size", type=int, help="Slices per occluded slab (default: the export's pool size).")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m brainage_tf.explain`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        try:
            settings = SaliencySettings(args.method, args.samples, args.noise, seed=args.seed)
        except ValueError as error:
            raise UsageError(str(error)) from None
        if not args.out.parent.is_dir():
            raise UsageError(f"--out {args.out}: folder {args.out.parent} does not exist")
        items = scan_items(args.scans, args.bids, args.manifest)
        if not items:
            raise UsageError("no scans: give SCAN paths, --bids or --manifest")
        model = ExportedModel(args.model)
        slabs = slab_settings(model.metadata, args.slab_axis, args.slab_size)
    except UsageError as error:
        print(f"{parser.prog}: error: {one_line(error)}", file=sys.stderr)
        return 2
    args.out.mkdir(exist_ok=True)
    rows = explain_items(model, items, settings, slabs, args.out)
    write_rows(rows, args.out / SUMMARY_CSV, EXTRA_COLUMNS)
    failed = sum(row["status"] == FAILED for row in rows)
    print(f"{len(rows) - failed} explained, {failed} failed: {args.out / SUMMARY_CSV}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
