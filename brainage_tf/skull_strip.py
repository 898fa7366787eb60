"""Skull stripping, a setting of the preprocessing: none, the template's brain mask, or a learned mask.

`none` feeds the whole head to the model (skull, scalp, fat and any neck); `template` zeroes what
lies outside the MNI152 template's brain mask after registration, one adult shape for every child;
`deepbet` outlines this scan's own brain with deepbet (Fisch et al., Comput. Biol. Med. 2024; MIT),
a network that ships its weights inside its wheel, so nothing is downloaded. The learned mask is
made in the scan's own space, before registration, so that a brain is registered to the template's
brain; `brainage_tf.preprocessing` carries it through registration and resampling.

deepbet and torch are an optional extra, imported only when the mode is used; the network is
loaded once per process (`load_brain_extractor`), on a GPU when there is one. Light: no torch,
TensorFlow or Keras at import.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from typing import Literal, get_args

import nibabel as nib
import numpy as np

from brainage_tf.errors import ImplausibleBrainMaskError, SkullStripUnavailableError
from brainage_tf.grids import Grid, mask_onto_grid

SkullStripMode = Literal["none", "template", "deepbet"]
SKULL_STRIP_MODES: tuple[str, ...] = get_args(SkullStripMode)
# The modes that need the optional extra, and the one command that installs it.
LEARNED_MODES = ("deepbet",)
SKULLSTRIP_INSTALL = 'pip install "brainage_tf[skullstrip]"'

# Bounds of a child's brain-mask volume in ml, generous on purpose. A term newborn's brain is about
# 350-400 ml (Knickmeyer et al. 2008; Holland et al. 2014), a very preterm infant's at 30 weeks
# about 200-250 ml; an adult's brain is about 1100-1500 ml, and the intracranial volume a brain
# mask outlines (brain and the CSF around it) reaches about 1900-2000 ml in large adults. A mask
# below half a newborn's brain or 25 % above the largest intracranial volume outlines no child's
# brain: a cropped scan, a failed mask or another body part.
MIN_BRAIN_ML = 150.0
MAX_BRAIN_ML = 2500.0
# A brain is brighter than what surrounds it in the field of view (mostly air, then skull); the mask
# deepbet draws in a noise volume is not. benchmarks/skull_strip.py measured the mean inside the
# learned mask over the mean outside it: 4.77-9.0 on 40 synthetic heads (0-22 y, both site profiles),
# 1.00 on a Gaussian and a Rician noise volume. Real heads with a neck and bright fat in view are
# less contrasted than the synthetic ones (no neck), so the bound stays near the noise's 1.0.
MIN_BRAIN_CONTRAST = 1.5
# Threads of torch in this process, when set (`torch_threads`).
TORCH_THREADS_VARIABLE = "BRAINAGE_TF_TORCH_THREADS"
# The network's probability above which a voxel is brain (deepbet's own default).
_THRESHOLD = 0.5


def extra_installed() -> bool:
    """True when deepbet (and so torch) can be imported."""
    return importlib.util.find_spec("deepbet") is not None


def check_available(mode: str) -> None:
    """Refuses, in one line, a learned mode whose optional extra is not installed.

    Called before any scan is read (the builders' configs, `predict`, `explain`, `calibrate`), so a
    missing extra stops the run at once instead of failing every scan.

    Raises:
        SkullStripUnavailableError: `mode` needs deepbet and it cannot be imported.
    """
    if mode in LEARNED_MODES and not extra_installed():
        raise SkullStripUnavailableError(
            f"skull stripping {mode!r} needs deepbet and torch, which are not installed; install them with: "
            f"{SKULLSTRIP_INSTALL} (a CPU-only torch: README, 'Preprocessing')"
        )


def available_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def torch_threads() -> int:
    """Threads torch may use in this process: $BRAINAGE_TF_TORCH_THREADS, else the cores it may run on.

    A pool of N preprocessing workers sets the variable to cores / N for its workers, so N
    networks do not each take every core.
    """
    value = os.environ.get(TORCH_THREADS_VARIABLE, "").strip()
    return max(1, int(value)) if value.isdigit() else max(1, available_cores())


@functools.lru_cache(maxsize=1)
def load_brain_extractor():
    """deepbet's network, loaded once per process: on a GPU when torch sees one, else on the CPU.

    Beam's `DoFn.setup` and the predict and explain workers call it before their first scan, so
    no scan pays for the load (about 1.5 s).

    Raises:
        SkullStripUnavailableError: deepbet is not installed.
    """
    check_available("deepbet")
    import torch
    from deepbet import BrainExtraction

    torch.set_num_threads(torch_threads())
    with warnings.catch_warnings():  # deepbet 1.0.2 loads TorchScript, which torch 2.13 calls deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        # deepbet picks CUDA (or Apple's MPS) when there is one and the CPU otherwise.
        return BrainExtraction(no_gpu=False)


def prepare(mode: str) -> None:
    """Loads what `mode` needs once per process (the network of a learned mode; nothing otherwise)."""
    if mode in LEARNED_MODES:
        load_brain_extractor()


def learned_brain_mask(data: np.ndarray, source_path: str | None) -> np.ndarray:
    """The brain of one scan as deepbet outlines it, in the scan's own voxels.

    Args:
        data: The scan's float32 voxels in RAS+ axis order (as `nib.as_closest_canonical` gives),
            any voxel size; not modified.
        source_path: Named in errors.

    Returns:
        A boolean mask of `data`'s shape: one connected brain, its holes filled.

    Raises:
        ImplausibleBrainMaskError: deepbet finds no brain at all.
    """
    extractor = load_brain_extractor()
    try:
        probability = extractor.run_model(np.array(data, dtype=np.float32))  # it works in place
        mask = extractor.postprocess(probability > _THRESHOLD)
    except (AssertionError, ValueError) as error:  # deepbet asserts when it finds no foreground
        raise ImplausibleBrainMaskError(
            source_path, f"the learned brain mask found no brain ({error})"
        ) from None
    return np.asarray(mask, dtype=bool)


def brain_volume_ml(mask: np.ndarray, voxel_volume_mm3: float) -> float:
    """The volume of a mask in ml."""
    return float(np.count_nonzero(mask)) * voxel_volume_mm3 / 1000.0


def check_learned_mask(data: np.ndarray, mask: np.ndarray, voxel_volume_mm3: float, source_path: str | None):
    """Refuses a learned mask no child's brain has, or one of a noise volume; else (ml, share of the view).

    Args:
        data: The scan's voxels, the mask's shape.
        mask: Its learned brain mask.
        voxel_volume_mm3: The volume of one voxel.
        source_path: Named in errors.

    Returns:
        (the mask's volume in ml, its share of the scan's field of view, 0-1).

    Raises:
        ImplausibleBrainMaskError: a volume outside MIN_BRAIN_ML-MAX_BRAIN_ML, or a mask whose mean
            intensity is below MIN_BRAIN_CONTRAST times the mean outside it (a noise volume).
    """
    volume = brain_volume_ml(mask, voxel_volume_mm3)
    if not MIN_BRAIN_ML <= volume <= MAX_BRAIN_ML:
        raise ImplausibleBrainMaskError(
            source_path,
            f"the learned brain mask is {volume:.0f} ml, outside the {MIN_BRAIN_ML:.0f}-{MAX_BRAIN_ML:.0f} "
            "ml a child's brain can have (a cropped scan, another body part or a failed mask)",
        )
    outside = float(data[~mask].mean()) if not mask.all() else 0.0
    contrast = float(data[mask].mean()) / outside if outside > 0 else float("inf")
    if contrast < MIN_BRAIN_CONTRAST:
        raise ImplausibleBrainMaskError(
            source_path,
            f"the learned brain mask is only {contrast:.2f} times as bright as the rest of the image "
            f"(a brain is at least {MIN_BRAIN_CONTRAST}); a noise volume, not a head",
        )
    return volume, float(np.count_nonzero(mask)) / mask.size


def mask_on_grid(mask: np.ndarray, affine: np.ndarray, grid: Grid, source_path: str | None) -> np.ndarray:
    """A mask in the scan's (registered) space carried onto the grid as the template's mask is.

    Raises:
        ImplausibleBrainMaskError: no voxel of the mask lands on the grid (the brain lies outside
            the grid's field of view).
    """
    brain = mask_onto_grid(nib.Nifti1Image(mask.astype(np.float32), affine), grid)
    if not brain.any():
        raise ImplausibleBrainMaskError(
            source_path, f"the brain mask lands outside the {grid.name} grid (is the scan in MNI space?)"
        )
    return brain


def template_mask_facts(
    mask: np.ndarray,
    grid_voxel_mm: float,
    world_to_atlas: np.ndarray,
    scan_shape: tuple[int, ...],
    scan_voxel_mm: tuple[float, ...],
) -> dict[str, float]:
    """The ml and field-of-view share of the template's brain mask (on the grid) in the scan's space.

    The registration scales volumes by det(world_to_atlas), so the template's brain is that much
    smaller in the scan's millimetres.
    """
    scale = abs(float(np.linalg.det(np.asarray(world_to_atlas)[:3, :3])))
    volume = brain_volume_ml(mask, grid_voxel_mm**3) / scale
    field_of_view_ml = float(np.prod(scan_shape[:3])) * float(np.prod(scan_voxel_mm)) / 1000.0
    return {"brain_volume_ml": volume, "brain_fov_share": volume / field_of_view_ml}
