"""Explanations of scans on disk with an export: a folder of maps and figures per scan, resumable.

Each scan's folder `DIR/<name>/` gets the saliency maps on the model grid and in
the scan's own space with their JSON sidecars, the slab occlusion table and plot,
and a montage; the completion marker `explained.json` is written last, so a folder
without it is known as unfinished and is made again on resume. The summary rows go
through `brainage_tf.serving.journal` to `DIR/explain.csv`.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainage_tf.defaults import DEFAULT_POOL_SIZE, DEFAULT_SLICE_AXIS, SLICE_AXIS_INDEX
from brainage_tf.errors import UsageError
from brainage_tf.explanation.saliency import SaliencySettings
from brainage_tf.model_registry import UnknownModelError, get_model_spec
from brainage_tf.preprocessing import PreprocessedScan, get_grid
from brainage_tf.serving.batch import BASE_COLUMNS, SCAN_COLUMNS, run_resumable
from brainage_tf.serving.exported_model import ExportedModel, model_input
from brainage_tf.serving.journal import ResultJournal
from brainage_tf.serving.predictions import provenance
from brainage_tf.serving.scans import ScanItem, folder_names

TOOL = "brainage_tf.explain"
SUMMARY_CSV = "explain.csv"
COMPLETION_MARKER = "explained.json"
EXPLAIN_COLUMNS = (*BASE_COLUMNS, "output_dir", "seconds", *SCAN_COLUMNS)


def slab_settings(metadata: dict, slab_axis: str | None, slab_size: int | None) -> tuple[str, int]:
    """The slabs to occlude: the flags, else the model's own slabs in the export, else the defaults.

    What a model's own slab is comes from its spec (`ModelSpec.slabs`): slice_lstm's is its
    pooling window, `pool_size` slices along `slice_axis`. resnet3d has none: by default it
    gets a default slice_lstm's slabs, so the two models' profiles line up.

    Args:
        metadata: The export's metadata (or a run's config.json with `grid_shape`): the model
            name, its recorded config fields and the grid shape.
        slab_axis: `--slab-axis`, or None.
        slab_size: `--slab-size`, or None.

    Raises:
        UsageError: A model this package has not registered; an export without the slab size
            its model defines (exported before it was recorded) and no `--slab-size`; or slabs
            larger than the grid.
    """
    try:
        spec = get_model_spec(metadata.get("model"))
    except UnknownModelError as error:
        raise UsageError(f"the export's {error}") from None
    own_axis, own_size = spec.recorded_slabs(metadata)
    if slab_size is None and own_size is None and spec.slabs.size_field is not None:
        field = spec.slabs.size_field
        raise UsageError(
            f"the export's metadata has no {field} (exported before it was recorded): "
            f"pass --slab-size, the run's --{field.replace('_', '-')}"
        )
    axis = slab_axis or own_axis or DEFAULT_SLICE_AXIS
    size = int(slab_size if slab_size is not None else own_size or DEFAULT_POOL_SIZE)
    slices = metadata["grid_shape"][SLICE_AXIS_INDEX[axis]]
    if not 1 <= size <= slices:
        raise UsageError(f"--slab-size must be between 1 and the grid's {slices} {axis} slices, got {size}")
    return axis, size


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
    montage.scan_montage(volume, saliency, grid.affine, out_dir / "montage.png", title, scan.brain_mask)
    return predicted


class Explainer:
    """The handler of `run_batch` that explains one preprocessed scan into its folder."""

    def __init__(
        self,
        model: ExportedModel,
        items: Sequence[ScanItem],
        settings: SaliencySettings,
        slabs: tuple[str, int],
        out: Path,
    ):
        self.model, self.items, self.settings, self.slabs, self.out = model, items, settings, slabs, out
        self.folders = folder_names(items)

    def is_complete(self, index: int) -> bool:
        """True when the item's folder has the completion marker, written for this very scan."""
        marker = self.out / self.folders[index] / COMPLETION_MARKER
        try:
            return json.loads(marker.read_text()).get("source") == self.items[index].path
        except (OSError, json.JSONDecodeError, AttributeError):
            return False

    def __call__(self, index: int, item: ScanItem, scan: PreprocessedScan) -> dict:
        """The row's fields; the folder is made anew, and its marker written last."""
        start = time.perf_counter()
        folder = self.out / self.folders[index]
        if folder.exists():  # an unfinished folder of an interrupted run: nothing of it is kept
            shutil.rmtree(folder)
        predicted = explain_scan(self.model, item, scan, self.settings, self.slabs, folder)
        fields = {"predicted_age": predicted, "output_dir": folder.name}
        volume = model_input(scan)
        if self.model.reference is not None:  # as predict flags it: an explanation of an unusual scan says so
            reason = self.model.ood_reason(predicted, volume, scan.metadata.registration_ncc)
            fields.update(ood=bool(reason), ood_reason=reason)
        fields["seconds"] = round(time.perf_counter() - start, 2)
        marker = {"source": item.path, "predicted_age": predicted, "export": str(self.model.path)}
        (folder / COMPLETION_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        return fields


def explain_items(
    model: ExportedModel,
    items: Sequence[ScanItem],
    settings: SaliencySettings,
    slabs: tuple[str, int],
    out: Path,
    workers: int = 0,
    resume: bool = False,
    report=None,
) -> dict[str, int]:
    """Explains the items into `out`: a folder per scan and `out/explain.csv`; resumable.

    Returns:
        {"rows", "ok", "failed"} of explain.csv.

    Raises:
        UsageError: explain.csv (or its partial) exists without `resume`, or was written with
            another export or settings.
        Interrupted: SIGINT or SIGTERM inside `signals_interrupt()`.
    """
    explainer = Explainer(model, items, settings, slabs, out)
    recorded = {"saliency": settings.to_json(), "slabs": list(slabs)}
    journal = ResultJournal(out / SUMMARY_CSV, EXPLAIN_COLUMNS, provenance(model, TOOL, recorded), resume)
    return run_resumable(
        journal, items, model.preprocess_config, explainer, workers,
        is_complete=explainer.is_complete, report=report, description="explain",
    )  # fmt: skip
