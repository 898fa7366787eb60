"""Draw docs/images/synthetic_montage.png: one synthetic subject at ages 0.25-20 y.

Mid-axial (z = 10 mm) and mid-sagittal (x = 2 mm) MNI slices of the written scans, read back from
NIfTI and resampled through their own affines, as the preprocessing would see them.

Usage: python docs/make_synthetic_montage.py [--out docs/images/synthetic_montage.png] [--profile replication]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from brainage_tf.synthetic import (  # noqa: E402
    PROFILES,
    draw_subject_traits,
    load_template_anatomy,
    render_scan,
    write_nifti_gz,
)

AGES = (0.25, 1.0, 2.0, 6.0, 12.0, 20.0)


def world_slice(image: nib.Nifti1Image, axis: int, position_mm: float) -> np.ndarray:
    """Resample a scan on a 1 mm MNI plane perpendicular to a world axis.

    Args:
        image: Scan whose affine maps voxels to MNI mm.
        axis: 0 for sagittal (x fixed), 2 for axial (z fixed).
        position_mm: The fixed coordinate.

    Returns:
        The plane, rows = image vertical (superior or anterior up),
        columns = left to right / posterior to anterior.
    """
    x = np.arange(-90.0, 91.0)
    y = np.arange(-126.0, 91.0)
    z = np.arange(-72.0, 109.0)
    if axis == 2:
        grid = np.meshgrid(x, y, [position_mm], indexing="ij")
    else:
        grid = np.meshgrid([position_mm], y, z, indexing="ij")
    world = np.stack([g.ravel() for g in grid] + [np.ones(grid[0].size)])
    voxel = (np.linalg.inv(image.affine) @ world)[:3]
    values = ndimage.map_coordinates(np.asarray(image.dataobj, dtype=np.float32), voxel, order=1, cval=0.0)
    plane = values.reshape(grid[0].shape).squeeze()
    return np.flipud(plane.T)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "images" / "synthetic_montage.png"))
    parser.add_argument("--profile", default="replication", choices=PROFILES)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    anatomy = load_template_anatomy()
    traits = draw_subject_traits(np.random.default_rng(args.seed), args.profile, sex="F")
    # Tempo 1 so each panel shows the population curve at that age.
    traits = dataclasses.replace(traits, tempo=1.0)
    figure, axes = plt.subplots(2, len(AGES), figsize=(2.3 * len(AGES), 5.4), facecolor="black")
    with tempfile.TemporaryDirectory() as scratch:
        for column, age in enumerate(AGES):
            scan = render_scan(anatomy, traits, age, np.random.default_rng(args.seed + column))
            path = Path(scratch) / f"age{age}.nii.gz"
            write_nifti_gz(scan, path)
            written = nib.load(path)
            axial = world_slice(written, 2, 10.0)
            sagittal = world_slice(written, 0, 2.0)
            top = np.percentile(axial[axial > 0], 99.5)
            for row, plane in enumerate((axial, sagittal)):
                axes[row, column].imshow(plane, cmap="gray", vmin=0, vmax=top, interpolation="bilinear")
                axes[row, column].axis("off")
            axes[0, column].set_title(f"{age:g} y", color="white")
    figure.suptitle(
        f"Synthetic T1w, one subject ({args.profile} profile, site {traits.site.name})", color="white"
    )
    figure.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110, facecolor="black")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
