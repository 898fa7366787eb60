"""The report's quality-control montage: the preprocessed scan with the template's brain outline over it.

A registration that failed shows at a glance: the brain sits off the outline, or
spills over it. A scan stripped with its own learned mask (`skull_strip="deepbet"`) shows
that mask's outline too, so a mask that cut into the brain or kept the scalp shows as well.
Drawn with numpy alone (a few milliseconds per scan), so predict's process, which already
holds each preprocessed volume for the model, draws it as the scan finishes: preprocessing
is never run a second time for the report. Views follow
`brainage_tf.explanation.montage.VIEWS` (neurological convention: the subject's left
on the image's left).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.ndimage

from brainage_tf.explanation.montage import MASK_OUTLINE_RGB, VIEWS, cut_plane
from brainage_tf.preprocessing import PreprocessConfig, PreprocessedScan, get_grid, template_on_grid
from brainage_tf.serving.scans import ScanItem, item_keys

# Planes drawn per view, at these fractions of the template brain's extent along the view's axis.
PLANE_FRACTIONS = (0.3, 0.5, 0.7)
# Panels are enlarged to about this many pixels on their longer side.
PANEL_PIXELS = 200
OUTLINE_RGB = (255, 210, 0)
_GAP_PIXELS = 4
_GAP_GREY = 255  # the page's white between panels


def _planes(mask: np.ndarray, axis: int) -> list[int]:
    """The planes at PLANE_FRACTIONS of the mask's extent along `axis`."""
    occupied = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
    low, high = (int(occupied[0]), int(occupied[-1])) if occupied.size else (0, mask.shape[axis] - 1)
    return [round(low + fraction * (high - low)) for fraction in PLANE_FRACTIONS]


Outline = tuple[np.ndarray, tuple[int, int, int]]  # a boolean mask slice and its RGB colour


def _panel(grey: np.ndarray, outlines: Sequence[Outline], window: tuple[float, float], zoom: int):
    """One RGB panel: the slice in grey, enlarged, with each (mask slice, colour) outlined; rows top first."""
    low, high = window
    big = scipy.ndimage.zoom(grey.astype(np.float32), zoom, order=1)
    shade = np.clip((big - low) / max(high - low, 1e-6), 0.0, 1.0) * 255.0
    rgb = np.repeat(shade[..., np.newaxis], 3, axis=2).astype(np.uint8)
    for brain, colour in outlines:
        inside = scipy.ndimage.zoom(brain.astype(np.float32), zoom, order=1) >= 0.5
        rgb[inside & ~scipy.ndimage.binary_erosion(inside, border_value=0)] = colour
    return rgb[::-1]  # the cut's rows run bottom first


def montage_rgb(volume: np.ndarray, mask: np.ndarray, stripped: np.ndarray | None = None) -> np.ndarray:
    """An RGB uint8 image: one row per view (axial, coronal, sagittal), three planes each.

    Args:
        volume: The preprocessed scan (x, y, z) on the model grid.
        mask: The template's boolean brain mask on the same grid (outlined in OUTLINE_RGB).
        stripped: The scan's own brain mask on the grid, if it was stripped with one (MASK_OUTLINE_RGB).
    """
    volume = np.nan_to_num(np.asarray(volume, np.float32))
    # The window of the brain's voxels, so a z-scored scan and a raw one both show their anatomy.
    brain_values = volume[mask] if mask.any() else volume.ravel()
    window = tuple(float(v) for v in np.percentile(brain_values, [1, 99]))
    zoom = max(1, round(PANEL_PIXELS / max(volume.shape)))
    masks = [(mask, OUTLINE_RGB)] + ([(stripped, MASK_OUTLINE_RGB)] if stripped is not None else [])
    panels = [
        _panel(cut_plane(volume, axis, index, horizontal, vertical),
               [(cut_plane(brain, axis, index, horizontal, vertical), colour) for brain, colour in masks],
               window, zoom)
        for _, axis, horizontal, vertical, _, _ in VIEWS
        for index in _planes(mask, axis)
    ]  # fmt: skip
    # Every panel centred in one cell size, on black like the scan's air, so the views form a grid.
    cell_h, cell_w = max(p.shape[0] for p in panels), max(p.shape[1] for p in panels)
    columns, step_h, step_w = len(PLANE_FRACTIONS), cell_h + _GAP_PIXELS, cell_w + _GAP_PIXELS
    canvas = np.full(
        (len(VIEWS) * step_h - _GAP_PIXELS, columns * step_w - _GAP_PIXELS, 3), _GAP_GREY, np.uint8
    )
    for number, panel in enumerate(panels):
        top, left = (number // columns) * step_h, (number % columns) * step_w
        canvas[top : top + cell_h, left : left + cell_w] = 0
        top, left = top + (cell_h - panel.shape[0]) // 2, left + (cell_w - panel.shape[1]) // 2
        canvas[top : top + panel.shape[0], left : left + panel.shape[1]] = panel
    return canvas


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB uint8 image as PNG bytes (Pillow, which matplotlib requires)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def montage_file(folder: Path, key: str) -> Path:
    """Where the montage of the scan with this item key is kept until the report is written."""
    return folder / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.png"


class MontageKeeper:
    """Draws each scan's montage as predict finishes it, into `folder`, keyed by the item's key.

    Files on disk, not memory: a resumed run keeps the montages of the scans it does not redo.
    """

    def __init__(self, folder: Path, items: Sequence[ScanItem], config: PreprocessConfig):
        self.folder = folder
        self.keys = item_keys(items)
        self.mask = template_on_grid(get_grid(config.grid))[1]

    def __call__(self, index: int, item: ScanItem, scan: PreprocessedScan) -> None:
        """Writes the montage of `scan`, the preprocessed volume of items[index]."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # The template mode's mask is the template's own: outlined once.
        own = scan.brain_mask
        stripped = None if own is None or np.array_equal(own, self.mask) else own
        montage_file(self.folder, self.keys[index]).write_bytes(
            png_bytes(montage_rgb(scan.volume, self.mask, stripped))
        )
