"""Times preprocess_scan on one 1 mm scan, pinned to one core, for every grid and registration mode.

Run: python benchmarks/preprocess_scan.py [--repeats 3]

The scan is the MNI152 template at 1 mm, moved by a known affine (rotation,
scaling, shift), stored LPS as int16 with scaling, as a scanner would write it.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import nibabel as nib
import numpy as np
from nibabel.affines import from_matvec
from nibabel.eulerangles import euler2mat


def _one_core() -> None:
    import SimpleITK as sitk

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def _write_scan(path: str) -> None:
    from brainage_tf.registration import mni152_images

    template, _ = mni152_images()
    data = np.asarray(template.dataobj)[::-1, ::-1, :]
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps[:2, 3] = [data.shape[0] - 1, data.shape[1] - 1]
    moved = from_matvec(euler2mat(0.15, -0.08, 0.1) @ np.diag([0.92, 1.04, 0.97]), [10.0, -6.0, 12.0])
    image = nib.Nifti1Image(np.ascontiguousarray(data * 1000), moved @ template.affine @ lps)
    image.set_data_dtype(np.int16)
    nib.save(image, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    _one_core()
    from brainage_tf import preprocessing

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sub-01_T1w.nii.gz")
        _write_scan(path)
        preprocessing.preprocess_scan(
            path, preprocessing.PreprocessConfig(grid="tiny")
        )  # warm the template caches
        print(f"scan: {nib.load(path).shape} at 1 mm, LPS, int16; one core; best of {args.repeats}")
        print(f"{'grid':<7} {'registration':<13} {'seconds':>8} {'template NCC':>13}")
        for grid in ("paper", "small", "tiny"):
            for registration in ("none", "affine"):
                config = preprocessing.PreprocessConfig(grid=grid, registration=registration)
                preprocessing.preprocess_scan(path, config)
                timings = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    result = preprocessing.preprocess_scan(path, config)
                    timings.append(time.perf_counter() - start)
                print(
                    f"{grid:<7} {registration:<13} {min(timings):>8.2f} "
                    f"{result.metadata.registration_ncc:>13.3f}"
                )


if __name__ == "__main__":
    main()
