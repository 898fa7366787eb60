"""One preprocessing path from any scan file to the model's input volume.

The same :func:`preprocess_scan` serves TFDS ingest (through Beam) and
prediction, so training and serving cannot skew. The steps follow section 3 of
He et al. (ISBI 2020): load, validate, reorient to RAS+, bring into atlas space
(already there, or affine registration to MNI152 2009a), resample onto a fixed
grid, optionally mask the brain (`brainage_tf.skull_strip`), and z-score the intensities inside the
brain.

Only numpy, scipy and nibabel are imported at module import; nilearn (the
MNI152 template) and SimpleITK (registration, in `brainage_tf.registration`) are
imported when first needed. The typed errors it raises live in `brainage_tf.errors`.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from typing import Literal, get_args

import nibabel as nib
import nibabel.processing
import numpy as np

from brainage_tf.errors import (
    ConstantImageError,
    DegenerateAffineError,
    NonFiniteVoxelsError,
    VoxelSizeError,
)
from brainage_tf.grids import (
    FIELD_OF_VIEW_CENTRE_MM,
    FIELD_OF_VIEW_MM,
    GRID_NAMES,
    GRIDS,
    Grid,
    get_grid,
    template_on_grid,
)
from brainage_tf.registration import register_to_template
from brainage_tf.resampling import resample_image
from brainage_tf.scan_file import MAX_SCAN_VOXELS, check_header, open_scan, read_voxels, unreadable
from brainage_tf.skull_strip import (
    LEARNED_MODES,
    SKULL_STRIP_MODES,
    SkullStripMode,
    check_learned_mask,
    learned_brain_mask,
    mask_on_grid,
    template_mask_facts,
)

__all__ = [
    "FIELD_OF_VIEW_CENTRE_MM",
    "FIELD_OF_VIEW_MM",
    "GRIDS",
    "GRID_NAMES",
    "MAX_NON_FINITE_FRACTION",
    "MAX_SCAN_VOXELS",
    "MAX_VOXEL_SIZE_MM",
    "MIN_VOXEL_SIZE_MM",
    "REGISTRATION_MODES",
    "SKULL_STRIP_MODES",
    "Grid",
    "PreprocessConfig",
    "PreprocessedScan",
    "RegistrationMode",
    "ScanMetadata",
    "get_grid",
    "load_scan",
    "preprocess_image",
    "preprocess_scan",
    "resample_image",
    "template_on_grid",
]

RegistrationMode = Literal["none", "affine"]
REGISTRATION_MODES: tuple[str, ...] = get_args(RegistrationMode)

# Non-finite voxels (SPM writes NaN outside the field of view) are read as 0 up to this share of the image.
MAX_NON_FINITE_FRACTION = 0.5

# Smallest and largest voxel edge (mm) a real brain MRI can have.
MIN_VOXEL_SIZE_MM = 0.1
MAX_VOXEL_SIZE_MM = 12.0


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """Settings of the preprocessing path.

    Attributes:
        grid: Target grid preset name or a Grid.
        registration: ``"none"`` if the scan's world coordinates are already MNI
            millimetres (as for the paper's atlas-registered data), ``"affine"``
            to register it to the MNI152 2009a template with SimpleITK.
        skull_strip: What is kept of the head (`brainage_tf.skull_strip`): ``"none"`` all of it;
            ``"template"`` the MNI152 template's brain mask on the grid (voxels outside it are 0);
            ``"deepbet"`` the scan's own brain as deepbet outlines it before registration, carried
            onto the grid (needs the ``skullstrip`` extra).
        max_voxels: Most voxels a scan may hold (default `MAX_SCAN_VOXELS`); a header that
            declares more is refused with ScanTooLargeError before any voxel is read. A guard
            against running out of memory, not a setting: it never changes an output.
    """

    grid: str | Grid = "small"
    registration: RegistrationMode = "none"
    skull_strip: SkullStripMode = "none"
    max_voxels: int = MAX_SCAN_VOXELS

    def __post_init__(self):
        get_grid(self.grid)
        if self.registration not in REGISTRATION_MODES:
            raise ValueError(f"registration must be one of {REGISTRATION_MODES}, got {self.registration!r}")
        if self.skull_strip not in SKULL_STRIP_MODES:
            raise ValueError(f"skull_strip must be one of {SKULL_STRIP_MODES}, got {self.skull_strip!r}")
        if (
            isinstance(self.max_voxels, bool)
            or not isinstance(self.max_voxels, numbers.Integral)
            or self.max_voxels < 1
        ):
            raise ValueError(f"max_voxels must be a positive whole number, got {self.max_voxels!r}")


@dataclasses.dataclass(frozen=True)
class ScanMetadata:
    """What preprocessing knew about a scan.

    Attributes:
        source_path: The file read, or ``"<in-memory image>"``.
        original_shape: Voxel shape as stored (singleton 4th axis dropped).
        original_voxel_size: Voxel edges in mm from the stored affine.
        orientation: Axis codes of the stored voxel axes, e.g. ``"LPS"``.
        registration: The registration mode used.
        registration_ncc: Normalised cross-correlation between the output and
            the MNI152 template inside the template brain mask (1 is perfect).
        grid: Name of the output grid.
        non_finite_voxels: NaN or infinite voxels of the stored image, all outside the
            atlas brain, that were read as 0.
        world_to_atlas: 4x4 affine from the scan's world millimetres to MNI152
            millimetres (identity without registration), so that a map on the
            grid can be resampled back into the scan's own space.
        skull_strip: The skull-stripping mode used.
        brain_volume_ml: The brain mask's volume in the scan's own space (the template's mask
            carried back through the registration for ``template``); NaN for ``none``.
        brain_fov_share: That volume's share of the scan's field of view (0-1); NaN for ``none``.
    """

    source_path: str
    original_shape: tuple[int, int, int]
    original_voxel_size: tuple[float, float, float]
    orientation: str
    registration: str
    registration_ncc: float
    grid: str
    non_finite_voxels: int = 0
    world_to_atlas: tuple[tuple[float, ...], ...] = tuple(map(tuple, np.eye(4)))
    skull_strip: str = "none"
    brain_volume_ml: float = float("nan")
    brain_fov_share: float = float("nan")


@dataclasses.dataclass(frozen=True)
class PreprocessedScan:
    """A model-ready volume (float32, ``grid.shape``) and its metadata.

    ``brain_mask`` is the boolean mask on the grid that zeroed the volume (None for skull_strip
    ``none``): what the report draws, and what skull stripping is measured by.
    """

    volume: np.ndarray
    metadata: ScanMetadata
    brain_mask: np.ndarray | None = None


def load_scan(path: str | os.PathLike, max_voxels: int = MAX_SCAN_VOXELS) -> nib.spatialimages.SpatialImage:
    """Loads a scan that nibabel reads, with its voxels in memory.

    Accepts NIfTI-1/2 (``.nii``, ``.nii.gz``), MINC1/MINC2 (``.mnc``),
    MGH/MGZ and Analyze (``.hdr``/``.img``). The header is checked before any
    voxel is read (`brainage_tf.scan_file.check_header`).

    Args:
        path: The scan file.
        max_voxels: Most voxels the header may declare.

    Raises:
        UnreadableScanError: if the file is missing, of an unknown format,
            corrupt, or a truncated gzip.
        NotSingleVolumeError: if the header declares anything but one 3D volume.
        ScanTooLargeError: if the header declares more than ``max_voxels`` voxels.
    """
    path = os.fspath(path)
    image = open_scan(path, max_voxels)
    try:
        image.get_fdata(dtype=np.float32)  # reads (and caches) every voxel now, so truncation shows here
    except Exception as error:  # nibabel raises many types for one cause: an unreadable file
        raise unreadable(path, error) from error
    return image


def preprocess_scan(
    path: str | os.PathLike, config: PreprocessConfig = PreprocessConfig()
) -> PreprocessedScan:
    """Turns one scan file into the model's input volume.

    The header is checked first, so a file that declares too many voxels
    (``config.max_voxels``) or several volumes is refused before any voxel is read.

    Args:
        path: A scan file in any format :func:`load_scan` reads.
        config: Grid, registration mode, masking and the voxel limit.

    Returns:
        The float32 volume on ``config.grid`` and its metadata.

    Raises:
        ScanError: a typed subclass naming the file and the problem.
    """
    path = os.fspath(path)
    image = open_scan(path, config.max_voxels)
    # Not cached in the image: this array is the one full-size copy, zeroed and smoothed in place.
    return _preprocess(image, read_voxels(image, path), config, path)


def preprocess_image(
    image: nib.spatialimages.SpatialImage,
    config: PreprocessConfig = PreprocessConfig(),
    source_path: str | None = None,
) -> PreprocessedScan:
    """Preprocesses an in-memory nibabel image; see :func:`preprocess_scan`.

    Args:
        image: A 3D image, or 4D with a singleton 4th axis.
        config: Grid, registration mode, masking and the voxel limit.
        source_path: Named in errors and metadata.

    Returns:
        The float32 volume on ``config.grid`` and its metadata.

    Raises:
        ScanError: a typed subclass naming the source and the problem.
    """
    check_header(image, source_path, config.max_voxels)
    data = image.get_fdata(dtype=np.float32, caching="unchanged")
    if image.in_memory or not data.flags.writeable:  # the steps below work in place, not on the caller's
        data = data.copy()
    return _preprocess(image, data, config, source_path)


def _preprocess(
    image: nib.spatialimages.SpatialImage, data: np.ndarray, config: PreprocessConfig, source_path: str | None
) -> PreprocessedScan:
    """Preprocesses ``data``, the float32 voxels of ``image`` (which it overwrites)."""
    grid = get_grid(config.grid)
    data, non_finite = _validated_volume(data, image.affine, source_path)
    voxel_size = tuple(float(v) for v in nib.affines.voxel_sizes(image.affine))
    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, image.affine))
    own_mask, brain_facts = None, {}
    if config.skull_strip in LEARNED_MODES:
        # Stripped in the scan's own space, so registration matches a brain to the template's brain.
        voxels = np.asarray(canonical.dataobj)  # a view of `data`, which this function may overwrite
        own_mask = learned_brain_mask(voxels, source_path)
        volume_ml, share = check_learned_mask(voxels, own_mask, float(np.prod(voxel_size)), source_path)
        brain_facts = {"brain_volume_ml": volume_ml, "brain_fov_share": share}
        voxels[~own_mask] = np.float32(0.0)
    world_to_atlas = np.eye(4)
    if config.registration == "affine":
        registered = register_to_template(canonical, source_path)
        world_to_atlas = registered.affine @ np.linalg.inv(canonical.affine)
        canonical = registered
    volume = resample_image(canonical, grid.shape, grid.affine, overwrite=True)
    template, mask = template_on_grid(grid)
    if non_finite is not None:
        _check_non_finite_outside_brain(non_finite, image.affine, canonical.affine, grid, mask, source_path)
    brain = mask if own_mask is None else mask_on_grid(own_mask, canonical.affine, grid, source_path)
    inside = volume[brain]
    spread = float(inside.std())
    if spread == 0.0:
        raise ConstantImageError(
            source_path,
            "no signal inside the MNI152 brain mask on the target grid; the scan does not cover "
            "the atlas brain (is it in MNI space? try registration='affine')",
        )
    # The paper says "divide by the variance"; the standard deviation gives unit scale.
    volume = (volume - float(inside.mean())) / spread
    ncc = _normalised_cross_correlation(volume[mask], template[mask])
    if config.skull_strip == "template":
        brain_facts = template_mask_facts(mask, grid.voxel_size_mm, world_to_atlas, data.shape, voxel_size)
    if config.skull_strip != "none":
        volume = np.where(brain, volume, 0.0)
    metadata = ScanMetadata(
        source_path=source_path or "<in-memory image>",
        original_shape=tuple(int(n) for n in data.shape),
        original_voxel_size=voxel_size,
        orientation="".join(nib.aff2axcodes(image.affine)),
        registration=config.registration,
        registration_ncc=ncc,
        grid=grid.name,
        non_finite_voxels=0 if non_finite is None else int(non_finite.sum()),
        world_to_atlas=tuple(tuple(float(v) for v in row) for row in world_to_atlas),
        skull_strip=config.skull_strip,
        **brain_facts,
    )
    return PreprocessedScan(
        volume=volume.astype(np.float32),
        metadata=metadata,
        brain_mask=None if config.skull_strip == "none" else np.asarray(brain, dtype=bool),
    )


def _is_finite(affine: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(affine)))


def _validated_volume(
    data: np.ndarray, affine: np.ndarray, path: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The single 3D volume of ``data`` with its non-finite voxels set to 0 in place, and their mask.

    The mask is None when every voxel is finite. ``data``'s shape has passed `check_header`.
    Raises a typed error for anything else a model cannot use.
    """
    if data.ndim > 3:  # check_header let through only extra axes of length 1
        data = data.reshape(data.shape[:3])
    non_finite = np.isfinite(data)
    np.logical_not(non_finite, out=non_finite)  # one mask in memory, not two
    count = int(np.count_nonzero(non_finite))
    if count / data.size > MAX_NON_FINITE_FRACTION:
        raise NonFiniteVoxelsError(
            path,
            f"{count} of {data.size} voxels are NaN or infinite "
            f"(more than {MAX_NON_FINITE_FRACTION:.0%} of the image)",
        )
    if count:
        data[non_finite] = np.float32(0.0)
    else:
        non_finite = None  # nothing to track: the mask is not kept through resampling
    if float(data.max()) == float(data.min()):
        raise ConstantImageError(path, f"every voxel equals {float(data.min()):g}")
    affine = np.asarray(affine, dtype=np.float64)
    if not _is_finite(affine):
        raise DegenerateAffineError(path, "the voxel-to-world affine has non-finite entries")
    linear = affine[:3, :3]
    singular_values = np.linalg.svd(linear, compute_uv=False)
    if singular_values.min() <= 1e-6 * max(singular_values.max(), 1e-12):
        raise DegenerateAffineError(
            path,
            "the voxel-to-world affine is not invertible "
            f"(singular values {np.round(singular_values, 6).tolist()})",
        )
    voxel_size = nib.affines.voxel_sizes(affine)
    if voxel_size.min() < MIN_VOXEL_SIZE_MM or voxel_size.max() > MAX_VOXEL_SIZE_MM:
        raise VoxelSizeError(
            path,
            f"voxel size {np.round(voxel_size, 4).tolist()} mm is outside "
            f"{MIN_VOXEL_SIZE_MM}-{MAX_VOXEL_SIZE_MM} mm",
        )
    return data, non_finite


def _check_non_finite_outside_brain(
    non_finite: np.ndarray,
    stored_affine: np.ndarray,
    world_affine: np.ndarray,
    grid: Grid,
    brain_mask: np.ndarray,
    path: str | None,
) -> None:
    """Raises NonFiniteVoxelsError when the non-finite voxels, carried to the grid, touch the atlas brain.

    The mask is reoriented and given the scan's final (registered) affine, so it lands
    where the zeros that replaced those voxels land.
    """
    canonical = nib.as_closest_canonical(nib.Nifti1Image(non_finite.astype(np.float32), stored_affine))
    on_grid = nibabel.processing.resample_from_to(
        nib.Nifti1Image(np.asarray(canonical.dataobj), world_affine),
        (grid.shape, grid.affine),
        order=1,
        mode="constant",
        cval=0.0,
    )
    inside = int((np.asarray(on_grid.dataobj)[brain_mask] > 0.0).sum())
    if inside:
        raise NonFiniteVoxelsError(
            path,
            f"{int(non_finite.sum())} voxels are NaN or infinite and they reach into the brain "
            f"({inside} of its {int(brain_mask.sum())} voxels on the {grid.name} grid)",
        )


def _normalised_cross_correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0
