"""Tests for brainage_tf.preprocessing on real third-party files and every bad-input case."""

import gzip
import os
import pathlib
import pickle
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from nibabel.affines import from_matvec
from nibabel.eulerangles import euler2mat

from brainage_tf import errors, scan_file
from brainage_tf import preprocessing as prep
from brainage_tf.registration import mni152_images

NIBABEL_DATA = pathlib.Path(nib.__file__).parent / "tests" / "data"
TINY = prep.PreprocessConfig(grid="tiny", registration="none")
# The checkout under test, so that a child interpreter measures this code and not an installed copy.
CHECKOUT = pathlib.Path(prep.__file__).resolve().parents[1]


def _assert_model_ready(result: prep.PreprocessedScan, grid: str = "tiny") -> None:
    grid_spec = prep.get_grid(grid)
    assert result.volume.shape == grid_spec.shape
    assert result.volume.dtype == np.float32
    assert np.isfinite(result.volume).all()
    _, mask = prep.template_on_grid(grid_spec)
    brain = result.volume[mask]
    assert abs(float(brain.mean())) < 1e-4
    assert abs(float(brain.std()) - 1.0) < 1e-4


@pytest.mark.parametrize(
    "filename, image_class, orientation",
    [
        ("anatomical.nii", "Nifti1Image", "LAS"),
        ("reoriented_anat_moved.nii", "Nifti1Image", "RAS"),
        ("minc1_1_scale.mnc", "Minc1Image", "SAR"),
        ("minc2_1_scale.mnc", "Minc2Image", "SAR"),
        ("small.mnc", "Minc2Image", "SAR"),
    ],
)
def test_real_third_party_files_run_the_whole_path(filename, image_class, orientation):
    path = NIBABEL_DATA / filename
    assert type(nib.load(path)).__name__ == image_class
    result = prep.preprocess_scan(path, TINY)
    _assert_model_ready(result)
    assert result.metadata.source_path == str(path)
    assert result.metadata.orientation == orientation
    assert result.metadata.original_shape == nib.load(path).shape[:3]


def test_nibabel_minc_brain_sample_lies_in_atlas_space():
    # small.mnc is an MNI-space head: without registration it already matches the template.
    result = prep.preprocess_scan(NIBABEL_DATA / "small.mnc", TINY)
    assert result.metadata.registration_ncc > 0.8
    assert result.metadata.original_voxel_size == pytest.approx((9.0, 8.0, 7.0))


@pytest.mark.parametrize("suffix", [".nii.gz", ".mgz", ".img"])
def test_nifti2_mgz_and_analyze_read_the_same_voxels(tmp_path, suffix):
    source = nib.load(NIBABEL_DATA / "anatomical.nii")
    data = np.asarray(source.dataobj, dtype=np.float32)
    writer = {".nii.gz": nib.Nifti2Image, ".mgz": nib.MGHImage, ".img": nib.AnalyzeImage}[suffix]
    path = tmp_path / f"anatomical{suffix}"
    nib.save(writer(data, source.affine), path)
    # Analyze stores only voxel sizes and an origin, so compare against the affine each format kept.
    expected = prep.preprocess_image(nib.Nifti1Image(data, nib.load(path).affine), TINY).volume
    np.testing.assert_allclose(prep.preprocess_scan(path, TINY).volume, expected, atol=1e-4)
    assert np.abs(expected).max() > 0


def test_same_anatomy_in_lps_and_ras_gives_the_same_output(tmp_path):
    template, _ = mni152_images()
    ras_data = np.asarray(template.dataobj)[::2, ::2, ::2]
    ras_affine = template.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    flip_x_y = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip_x_y[:2, 3] = [ras_data.shape[0] - 1, ras_data.shape[1] - 1]
    lps_data = ras_data[::-1, ::-1, :]
    lps_affine = ras_affine @ flip_x_y
    nib.save(nib.Nifti1Image(ras_data, ras_affine), tmp_path / "ras.nii.gz")
    nib.save(nib.Nifti1Image(np.ascontiguousarray(lps_data), lps_affine), tmp_path / "lps.nii.gz")

    ras = prep.preprocess_scan(tmp_path / "ras.nii.gz", TINY)
    lps = prep.preprocess_scan(tmp_path / "lps.nii.gz", TINY)

    assert lps.metadata.orientation == "LPS" and ras.metadata.orientation == "RAS"
    np.testing.assert_allclose(lps.volume, ras.volume, atol=1e-4)
    assert ras.metadata.registration_ncc > 0.99


def test_affine_registration_brings_a_perturbed_template_back_to_mni():
    template, mask = mni152_images()
    perturbation = from_matvec(euler2mat(0.17, -0.1, 0.12) @ np.diag([0.9, 1.05, 0.95]), [12.0, -8.0, 15.0])
    moved = nib.Nifti1Image(np.asarray(template.dataobj), perturbation @ template.affine)
    brain_voxels = np.argwhere(np.asarray(mask.dataobj) > 0.5)[::50]
    truth = nib.affines.apply_affine(template.affine, brain_voxels)
    unregistered = nib.affines.apply_affine(moved.affine, brain_voxels)

    result = prep.preprocess_image(moved, prep.PreprocessConfig(grid="tiny", registration="affine"))
    unaligned = prep.preprocess_image(moved, TINY)
    assert result.metadata.registration_ncc > 0.98
    assert unaligned.metadata.registration_ncc < 0.6
    # world_to_atlas takes the moved scan's world positions back to MNI (explanation maps go the other way).
    back = nib.affines.apply_affine(np.array(result.metadata.world_to_atlas), unregistered)
    assert np.linalg.norm(back - truth, axis=1).mean() < 2.0
    assert np.array_equal(unaligned.metadata.world_to_atlas, np.eye(4))


def test_failed_registration_raises_registration_error_naming_the_file(monkeypatch):
    import SimpleITK as sitk

    def fail(self, fixed, moving):
        raise RuntimeError("optimizer diverged")

    monkeypatch.setattr(sitk.ImageRegistrationMethod, "Execute", fail)
    path = NIBABEL_DATA / "small.mnc"
    with pytest.raises(errors.RegistrationError) as raised:
        prep.preprocess_scan(path, prep.PreprocessConfig(grid="tiny", registration="affine"))
    assert type(raised.value) is errors.RegistrationError
    assert str(raised.value) == f"{path}: affine registration to MNI152 failed (optimizer diverged)"


def test_template_skull_stripping_zeroes_outside_keeps_inside_and_records_the_masks_volume():
    path = NIBABEL_DATA / "small.mnc"
    plain = prep.preprocess_scan(path, TINY)
    masked = prep.preprocess_scan(path, prep.PreprocessConfig(grid="tiny", skull_strip="template"))
    _, mask = prep.template_on_grid(prep.get_grid("tiny"))
    assert np.all(masked.volume[~mask] == 0.0)
    np.testing.assert_array_equal(masked.volume[mask], plain.volume[mask])
    assert np.any(plain.volume[~mask] != 0.0)
    np.testing.assert_array_equal(masked.brain_mask, mask)
    assert plain.brain_mask is None and np.isnan(plain.metadata.brain_volume_ml)
    # Without registration the scan's millimetres are the atlas's: the template mask's own volume.
    assert masked.metadata.skull_strip == "template"
    assert masked.metadata.brain_volume_ml == pytest.approx(mask.sum() * 8.0**3 / 1000.0)
    field_of_view_ml = (
        np.prod(masked.metadata.original_shape) * np.prod(masked.metadata.original_voxel_size) / 1e3
    )
    assert masked.metadata.brain_fov_share == pytest.approx(
        masked.metadata.brain_volume_ml / field_of_view_ml
    )


@pytest.mark.parametrize("name", ["paper", "small", "tiny"])
def test_every_grid_covers_the_same_mni_box(name):
    grid = prep.get_grid(name)
    corner_low = grid.affine @ np.array([-0.5, -0.5, -0.5, 1.0])
    corner_high = grid.affine @ np.array([n - 0.5 for n in grid.shape] + [1.0])
    np.testing.assert_allclose(corner_high[:3] - corner_low[:3], prep.FIELD_OF_VIEW_MM)
    np.testing.assert_allclose((corner_high[:3] + corner_low[:3]) / 2, prep.FIELD_OF_VIEW_CENTRE_MM)
    assert name in grid.describe() and f"{grid.voxel_size_mm:g} mm" in grid.describe()


def test_unknown_grid_and_registration_are_rejected():
    with pytest.raises(ValueError, match="unknown grid"):
        prep.PreprocessConfig(grid="huge")
    with pytest.raises(ValueError, match="registration"):
        prep.PreprocessConfig(registration="nonlinear")


def _save(tmp_path, name, data, affine=None):
    path = tmp_path / name
    nib.save(
        nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.eye(4) if affine is None else affine), path
    )
    return path


def _noise(shape=(12, 14, 10)):
    return np.random.default_rng(0).normal(100.0, 10.0, size=shape)


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(errors.UnreadableScanError, match="missing.nii.gz: file not found"):
        prep.preprocess_scan(tmp_path / "missing.nii.gz", TINY)


def test_truncated_gzip_is_unreadable(tmp_path):
    path = _save(tmp_path, "scan.nii.gz", _noise((40, 40, 40)))
    payload = path.read_bytes()
    path.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(errors.UnreadableScanError, match=r"scan\.nii\.gz: cannot read"):
        prep.preprocess_scan(path, TINY)


def test_corrupt_gzip_and_garbage_files_are_unreadable(tmp_path):
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(gzip.compress(b"not a nifti header" * 40)[:-20] + b"\x00" * 20)
    garbage = tmp_path / "garbage.mnc"
    garbage.write_bytes(b"\x89HDF\x00garbage")
    for path in (corrupt, garbage):
        with pytest.raises(errors.UnreadableScanError, match=str(path.name)):
            prep.preprocess_scan(path, TINY)


def test_4d_with_several_volumes_is_rejected_and_singleton_4d_is_accepted(tmp_path):
    series = _save(tmp_path, "bold.nii.gz", np.stack([_noise(), _noise()], axis=-1))
    with pytest.raises(
        errors.NotSingleVolumeError, match=r"bold\.nii\.gz: expected one 3D volume, got a 4D image"
    ):
        prep.preprocess_scan(series, TINY)
    with pytest.raises(errors.NotSingleVolumeError, match="example_nifti2.nii.gz"):
        prep.preprocess_scan(NIBABEL_DATA / "example_nifti2.nii.gz", TINY)
    affine = np.diag([8.0, 8.0, 8.0, 1.0])
    affine[:3, 3] = [-48.0, -72.0, -40.0]
    singleton = _save(tmp_path, "t1.nii.gz", _noise()[..., None], affine)
    assert prep.preprocess_scan(singleton, TINY).volume.shape == prep.GRIDS["tiny"].shape


def test_single_slice_is_rejected(tmp_path):
    with pytest.raises(errors.NotSingleVolumeError, match="single slice"):
        prep.preprocess_scan(_save(tmp_path, "slice.nii.gz", _noise((30, 30, 1))), TINY)


def _small_mnc_with(value: float, *patches) -> nib.Nifti1Image:
    # small.mnc is an MNI-space head (axes S, A, R): its corners lie outside the atlas brain.
    image = nib.load(NIBABEL_DATA / "small.mnc")
    data = image.get_fdata(dtype=np.float32)
    for patch in patches:
        data[patch] = value
    return nib.Nifti1Image(data, image.affine)


def test_non_finite_background_is_read_as_zero_and_counted():
    corners = (slice(0, 3), slice(0, 4), slice(0, 4)), (slice(-2, None), slice(-3, None), slice(-3, None))
    with_nan = _small_mnc_with(np.nan, corners[0])
    np.asarray(with_nan.dataobj)[corners[1]] = np.inf
    result = prep.preprocess_image(with_nan, TINY, "spm.nii")
    _assert_model_ready(result)
    assert result.metadata.non_finite_voxels == 3 * 4 * 4 + 2 * 3 * 3
    zeroed = prep.preprocess_image(_small_mnc_with(0.0, *corners), TINY, "zeroed.nii")
    np.testing.assert_array_equal(result.volume, zeroed.volume)
    assert zeroed.metadata.non_finite_voxels == 0


def test_non_finite_voxels_inside_the_brain_are_rejected():
    centre = (slice(8, 10), slice(13, 15), slice(13, 15))
    with pytest.raises(
        errors.NonFiniteVoxelsError, match=r"^hole\.nii: 8 voxels are NaN .* reach into the brain"
    ):
        prep.preprocess_image(_small_mnc_with(np.nan, centre), TINY, "hole.nii")


def test_mostly_non_finite_image_is_rejected(tmp_path):
    data = _noise()
    data[: data.shape[0] * 2 // 3] = np.nan
    with pytest.raises(
        errors.NonFiniteVoxelsError,
        match=r"nan\.nii\.gz: \d+ of \d+ voxels are NaN or infinite \(more than 50%",
    ):
        prep.preprocess_scan(_save(tmp_path, "nan.nii.gz", data), TINY)


def test_nibabel_resampled_file_with_nan_inside_its_slab_is_rejected():
    # Its 153 NaN voxels fill the corners of a 3-slice slab through the brain.
    with pytest.raises(errors.NonFiniteVoxelsError, match="153 voxels are NaN or infinite and they reach"):
        prep.preprocess_scan(NIBABEL_DATA / "resampled_anat_moved.nii", TINY)


def test_constant_image_is_rejected(tmp_path):
    with pytest.raises(errors.ConstantImageError, match=r"flat\.nii\.gz: every voxel equals 7"):
        prep.preprocess_scan(_save(tmp_path, "flat.nii.gz", np.full((10, 10, 10), 7.0)), TINY)


def test_scan_outside_the_atlas_brain_is_rejected(tmp_path):
    far_away = np.eye(4)
    far_away[:3, 3] = [5000.0, 5000.0, 5000.0]
    with pytest.raises(errors.ConstantImageError, match="does not cover the atlas brain"):
        prep.preprocess_scan(_save(tmp_path, "far.nii.gz", _noise(), far_away), TINY)


@pytest.mark.parametrize(
    "linear",
    [np.diag([1.0, 1.0, 0.0]), np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])],
    ids=["zero-axis", "collinear-axes"],
)
def test_degenerate_affine_is_rejected(tmp_path, linear):
    # nibabel refuses to build a qform from a singular affine, so it goes in the sform alone.
    affine = np.eye(4)
    affine[:3, :3] = linear
    header = nib.Nifti1Header()
    header.set_data_shape((12, 14, 10))
    header.set_sform(affine, code=1)
    path = tmp_path / "singular.nii.gz"
    nib.save(nib.Nifti1Image(_noise().astype(np.float32), None, header), path)
    with pytest.raises(
        errors.DegenerateAffineError,
        match=r"singular\.nii\.gz: the voxel-to-world affine is not invertible",
    ):
        prep.preprocess_scan(path, TINY)


@pytest.mark.parametrize("voxel_mm", [0.001, 50.0])
def test_absurd_voxel_size_is_rejected(tmp_path, voxel_mm):
    path = _save(tmp_path, "odd.nii.gz", _noise(), np.diag([voxel_mm, 1.0, 1.0, 1.0]))
    with pytest.raises(errors.VoxelSizeError, match=r"odd\.nii\.gz: voxel size"):
        prep.preprocess_scan(path, TINY)


@pytest.mark.parametrize(
    "error_class", [errors.NonFiniteVoxelsError, errors.RegistrationError, errors.ScanTooLargeError]
)
def test_scan_errors_survive_pickling_for_beam_workers(error_class):
    error = error_class("/data/a.nii", "3 voxels are NaN or infinite")
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is error_class
    assert str(restored) == "/data/a.nii: 3 voxels are NaN or infinite"
    assert isinstance(restored, errors.ScanError) and isinstance(restored, ValueError)


# Scans too large for memory, and series: refused from the header, before any voxel is read.


def _write_header_only(path: pathlib.Path, shape: tuple[int, ...], dtype: type, padding: int = 1000) -> None:
    """A NIfTI whose header declares ``shape`` but whose voxels stop after ``padding`` bytes."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_sform(np.diag([0.1, 0.1, 0.1, 1.0]), code=1)
    path.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * padding)  # an empty extension flag, then voxels


@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory) -> pathlib.Path:
    """A valid 1024^3 uint8 .nii.gz of 4.7 MB, written one slice at a time (never 1 GB in memory)."""
    size = 1024
    path = tmp_path_factory.mktemp("bomb") / "bomb.nii.gz"
    header = nib.Nifti1Header()
    header.set_data_shape((size, size, size))
    header.set_data_dtype(np.uint8)
    header.set_sform(np.eye(4), code=1)
    header.set_data_offset(352)
    zeros = bytes(size * size)
    with gzip.open(path, "wb", compresslevel=1) as stream:
        stream.write(header.binaryblock + b"\0" * 4)
        for _ in range(size):
            stream.write(zeros)
    return path


def _run_in_fresh_interpreter(code: str, *args: str) -> str:
    """Runs ``code`` with ``args`` in a fresh interpreter importing this checkout; returns its output."""
    # A child of this process would count pytest's own peak RSS in its ru_maxrss (vfork, then exec),
    # so a small interpreter starts it.
    launcher = "import subprocess, sys; sys.exit(subprocess.run([sys.executable, *sys.argv[1:]]).returncode)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(CHECKOUT), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-c", launcher, "-c", code, *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=True).stdout


def _refusal_and_peak_rss(path: pathlib.Path, config: str = "grid='tiny'") -> tuple[str, float]:
    """Runs preprocess_scan on ``path`` in a fresh interpreter: (its outcome, its peak RSS in GB)."""
    code = f"""
import resource, sys
from brainage_tf import errors
from brainage_tf import preprocessing as prep
try:
    prep.preprocess_scan(sys.argv[1], prep.PreprocessConfig({config}))
    print("accepted")
except errors.ScanError as error:
    print(type(error).__name__)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    outcome, max_rss_kib = _run_in_fresh_interpreter(code, str(path)).split()
    return outcome, int(max_rss_kib) * 1024 / 1e9


def test_truncated_file_whose_header_claims_2048_cubed_is_refused_from_the_header(tmp_path):
    path = tmp_path / "giant.nii"
    _write_header_only(path, (2048, 2048, 2048), np.int16)
    assert path.stat().st_size == 1352 and nib.load(path).shape == (2048, 2048, 2048)
    outcome, peak_gb = _refusal_and_peak_rss(path)  # first in a child: reading it takes 17 GB
    assert outcome == "ScanTooLargeError" and peak_gb < 2.0, (outcome, peak_gb)
    with pytest.raises(errors.ScanTooLargeError) as raised:
        prep.preprocess_scan(path, TINY)
    assert str(raised.value) == (
        f"{path}: the header declares 2048x2048x2048 int16 voxels (8,589,934,592 voxels, 34.4 GB as "
        "float32), more than the limit of 268,435,456; to accept it, raise the limit (--max-voxels of "
        "predict and explain, max_voxels of a builder config)"
    )


def test_gzip_bomb_of_1024_cubed_voxels_is_refused_from_the_header(gzip_bomb):
    image = nib.load(gzip_bomb)  # a valid image of that shape, to its last slice
    assert image.shape == (1024, 1024, 1024) and image.get_data_dtype() == np.uint8
    assert gzip_bomb.stat().st_size < 5e6 and not np.asarray(image.dataobj[..., -1]).any()
    outcome, peak_gb = _refusal_and_peak_rss(gzip_bomb, "grid='paper'")  # first in a child: 14 GB to read
    assert outcome == "ScanTooLargeError" and peak_gb < 2.0, (outcome, peak_gb)
    with pytest.raises(
        errors.ScanTooLargeError,
        match=r"^\S*bomb\.nii\.gz: the header declares 1024x1024x1024 uint8 voxels \(1,073,741,824 voxels, "
        r"4\.3 GB as float32\), more than the limit of 268,435,456; to accept it, raise the limit",
    ) as raised:
        prep.preprocess_scan(gzip_bomb, prep.PreprocessConfig(grid="paper", registration="affine"))
    assert "\n" not in str(raised.value)


def test_the_limit_comes_from_the_config(tmp_path):
    affine = np.diag([8.0, 8.0, 8.0, 1.0])
    affine[:3, 3] = [-48.0, -72.0, -40.0]
    path = _save(tmp_path, "t1.nii.gz", _noise((12, 14, 10)), affine)
    at_limit = prep.PreprocessConfig(grid="tiny", max_voxels=12 * 14 * 10)
    assert prep.preprocess_scan(path, at_limit).volume.shape == prep.GRIDS["tiny"].shape
    below = prep.PreprocessConfig(grid="tiny", max_voxels=12 * 14 * 10 - 1)
    message = (
        r"t1\.nii\.gz: the header declares 12x14x10 float32 voxels \(1,680 voxels, 0\.0 MB .* limit of 1,679;"
    )
    with pytest.raises(errors.ScanTooLargeError, match=message):
        prep.preprocess_scan(path, below)
    with pytest.raises(errors.ScanTooLargeError, match="limit of 1,679;"):
        prep.preprocess_image(nib.load(path), below, str(path))
    with pytest.raises(errors.ScanTooLargeError, match="limit of 1,679;"):
        prep.load_scan(path, max_voxels=1679)


@pytest.mark.parametrize("max_voxels", [0, -5, 2.5e8, True, "268435456"])
def test_max_voxels_must_be_a_positive_whole_number(max_voxels):
    with pytest.raises(ValueError, match="max_voxels must be a positive whole number"):
        prep.PreprocessConfig(max_voxels=max_voxels)


def test_4d_series_is_refused_from_its_header_before_its_voxels_are_read(tmp_path):
    # 200 volumes of 64x64x32 declared, none stored: reading voxels would fail as unreadable.
    series = tmp_path / "bold.nii"
    _write_header_only(series, (64, 64, 32, 200), np.float32)
    with pytest.raises(
        errors.NotSingleVolumeError,
        match=r"bold\.nii: expected one 3D volume, got a 4D image of shape \(64, 64, 32, 200\)$",
    ):
        prep.preprocess_scan(series, TINY)
    # A series larger than the voxel limit is named for what it is: not one volume.
    fmri = tmp_path / "long_bold.nii"
    _write_header_only(fmri, (128, 128, 64, 1000), np.int16)
    with pytest.raises(errors.NotSingleVolumeError, match="got a 4D image of shape"):
        prep.preprocess_scan(fmri, TINY)
    outcome, peak_gb = _refusal_and_peak_rss(fmri)
    assert outcome == "NotSingleVolumeError" and peak_gb < 2.0, (outcome, peak_gb)


def _scaled_and_stored_files(tmp_path: pathlib.Path) -> list[pathlib.Path]:
    """One small brain-like volume stored the ways scanners and tools store it."""
    data = _noise((21, 17, 13)).astype(np.float32) * 7.3 - 120.0
    files = []
    for name, dtype, image_class in [
        ("int16_scaled.nii.gz", np.int16, nib.Nifti1Image),
        ("uint8_scaled.nii", np.uint8, nib.Nifti1Image),
        ("float64.nii.gz", np.float64, nib.Nifti2Image),
        ("int32.mgz", np.int32, nib.MGHImage),
        ("int16.img", np.int16, nib.Spm2AnalyzeImage),
    ]:
        image = image_class(data, np.diag([1.2, 0.9, 1.1, 1.0]))
        image.set_data_dtype(dtype)
        nib.save(image, tmp_path / name)
        files.append(tmp_path / name)
    singleton = nib.Nifti1Image(data[..., None], np.eye(4))
    singleton.set_data_dtype(np.int16)
    nib.save(singleton, tmp_path / "singleton_4d.nii.gz")
    return [*files, tmp_path / "singleton_4d.nii.gz"]


def test_voxels_read_slab_by_slab_have_the_bits_nibabel_reads_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(scan_file, "SLAB_VOXELS", 100)  # many slabs, and a last one that is partial
    paths = _scaled_and_stored_files(tmp_path) + [NIBABEL_DATA / "anatomical.nii"]
    for path in paths:
        expected = nib.load(path).get_fdata(dtype=np.float32)
        image = scan_file.open_scan(path)
        assert type(image.dataobj) is nib.arrayproxy.ArrayProxy
        voxels = scan_file.read_voxels(image, str(path))
        assert voxels.dtype == np.float32 and voxels.shape == expected.shape, path
        assert voxels.tobytes() == expected.tobytes(), path
    assert nib.load(paths[0]).dataobj.slope != 1.0  # the scaled case is scaled


@pytest.mark.parametrize(
    "stored_axes, shape",
    [("LPS", (20, 30, 40)), ("PIR", (20, 30, 40)), ("SAR", (20, 30, 40, 1)), ("RAS", (20, 30, 40))],
)
def test_voxels_are_laid_out_in_memory_in_ras_order(stored_axes, shape):
    # Axial, sagittal (PIR, SAR) and 4D-singleton storage: the RAS+ view is C-ordered, up to flips.
    ras_axes = {"L": (0, -1.0), "R": (0, 1.0), "P": (1, -1.0), "A": (1, 1.0), "I": (2, -1.0), "S": (2, 1.0)}
    affine = np.zeros((4, 4))
    affine[3, 3] = 1.0
    for stored, code in enumerate(stored_axes):
        axis, sign = ras_axes[code]
        affine[axis, stored] = sign * (0.8 + 0.1 * stored)
    data = scan_file.canonical_layout(shape, affine)
    assert data.shape == shape and data.dtype == np.float32 and data.flags.writeable
    ras = np.asarray(nib.as_closest_canonical(nib.Nifti1Image(data.reshape(shape[:3]), affine)).dataobj)
    assert np.shares_memory(ras, data)
    assert [abs(stride) for stride in ras.strides] == list(np.empty(ras.shape, np.float32).strides)


def test_smoothing_in_place_gives_the_bits_of_smoothing_a_copy():
    data = np.ascontiguousarray(_noise((40, 44, 36)).astype(np.float32)[::-1, :, ::-1])
    image = nib.as_closest_canonical(nib.Nifti1Image(data, np.diag([-1.0, 1.1, -0.9, 1.0])))
    grid = prep.get_grid("small")
    expected = prep.resample_image(image, grid.shape, np.diag([3.0, 3.0, 3.0, 1.0]))
    untouched = np.asarray(image.dataobj).copy()
    assert np.array_equal(np.asarray(image.dataobj), untouched)
    in_place = prep.resample_image(image, grid.shape, np.diag([3.0, 3.0, 3.0, 1.0]), overwrite=True)
    assert in_place.tobytes() == expected.tobytes()
    assert not np.array_equal(np.asarray(image.dataobj), untouched)  # it did smooth the image's own array


def test_preprocess_image_leaves_the_callers_voxels_alone():
    image = _small_mnc_with(np.nan, (slice(0, 3), slice(0, 4), slice(0, 4)))
    before = np.asarray(image.dataobj).copy()
    prep.preprocess_image(image, TINY, "spm.nii")
    np.testing.assert_array_equal(np.asarray(image.dataobj), before)


def test_a_large_scan_costs_about_one_float32_copy_of_its_voxels(tmp_path):
    # 27 M voxels stored as scaled int16: nibabel's get_fdata scales them all in float64 (16 bytes a voxel).
    shape = (300, 300, 300)
    data = np.zeros(shape, dtype=np.float32)
    data[60:240, 50:250, 40:260] = np.linspace(0.0, 900.0, 200, dtype=np.float32)[None, :, None]
    affine = np.diag([0.6, 0.6, 0.6, 1.0])
    affine[:3, 3] = [-90.0, -107.0, -85.0]
    image = nib.Nifti1Image(data, affine)
    image.set_data_dtype(np.int16)
    nib.save(image, tmp_path / "big.nii.gz")
    del data, image
    prep.template_on_grid(prep.get_grid("small"))  # fills the array cache, so the child's warm-up stays small
    code = """
import resource, sys
from brainage_tf import preprocessing as prep
prep.template_on_grid(prep.get_grid("small"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
prep.preprocess_scan(sys.argv[1], prep.PreprocessConfig(grid="small"))
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    before_kib, after_kib = (
        int(f) for f in _run_in_fresh_interpreter(code, str(tmp_path / "big.nii.gz")).split()
    )
    bytes_per_voxel = (after_kib - before_kib) * 1024 / np.prod(shape)
    # Measured 5.2 (the float32 copy, the finiteness mask, one slab scaled in float64); 16.3 when nibabel
    # read it whole, about 9 with one more float32 copy. Above 4, the scan and not the warm-up set the peak.
    assert 4.0 < bytes_per_voxel < 7.0, bytes_per_voxel
