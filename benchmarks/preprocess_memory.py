"""Peak memory and seconds of preprocess_scan per scan size, and of refusing two hostile files.

Run: python benchmarks/preprocess_memory.py [--cases 1mm 0.5mm largest truncated bomb] [--max-voxels N]

Every scan is written by its own process and preprocessed (grid `paper`) in a fresh
one, which reports its peak RSS (`ru_maxrss`) when it ends. This process only starts
them: a child inherits the peak RSS of the process that starts it (Linux counts the
parent's memory at vfork + exec in the child's `ru_maxrss`), so the parent stays small.

Cases:
    1mm: 197 x 233 x 189 at 1 mm (the MNI152 template's grid).
    0.5mm: 512 x 512 x 400 at 0.5 mm (105 M voxels, a 256 x 256 x 200 mm whole head).
    largest: exactly the voxel limit (`MAX_SCAN_VOXELS` or `--max-voxels`) in a 256 mm cube;
        512 x 512 x 1024 for the default 2**28.
    truncated: a 1.4 KB NIfTI whose header claims 2048^3 int16 voxels.
    bomb: a valid 1024^3 uint8 `.nii.gz` of 1.6 MB (stripes, not constant: the checks that read
        voxels let it through).
The first three hold the MNI152 template (nilearn's, nothing is downloaded) resampled onto
their grid, stored LPS as int16 with a scale factor, as scanners write them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CASES = ("1mm", "0.5mm", "largest", "truncated", "bomb")
# Registration modes measured per case; the hostile files are refused before either matters.
REGISTRATIONS = {"1mm": ("none", "affine"), "0.5mm": ("none", "affine"), "largest": ("none", "affine")}
# A child that runs longer has hung.
CHILD_TIMEOUT_S = 1800


def _default_limit() -> int:
    from brainage_tf import preprocessing

    return int(getattr(preprocessing, "MAX_SCAN_VOXELS", 2**28))


def _shape_of(voxels: int) -> tuple[int, int, int]:
    """Three factors of `voxels` close to its cube root, so the largest image is a plausible box."""
    shape = []
    rest = voxels
    for axes_left in (3, 2):
        size = round(rest ** (1.0 / axes_left))
        while rest % size:
            size -= 1
        shape.append(size)
        rest //= size
    return tuple(sorted([*shape, rest]))


def _template_on(shape: tuple[int, int, int], voxel_mm: tuple[float, float, float]):
    """The MNI152 template trilinearly resampled onto a RAS box of `shape` centred on the brain."""
    import nibabel.processing
    import numpy as np

    from brainage_tf.registration import mni152_images

    template, _ = mni152_images()
    affine = np.diag([*voxel_mm, 1.0])
    centre = np.array([0.0, -17.0, 5.0])
    affine[:3, 3] = centre - (np.array(shape) - 1) / 2.0 * np.array(voxel_mm)
    image = nibabel.processing.resample_from_to(template, (shape, affine), order=1)
    return np.asarray(image.dataobj, dtype=np.float32), affine


def _write_lps_int16(path: str, data, affine) -> None:
    """Stores `data` (RAS) flipped to LPS as int16 with a scale factor, as a scanner writes it."""
    import nibabel as nib
    import numpy as np

    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [data.shape[0] - 1, data.shape[1] - 1]
    image = nib.Nifti1Image(np.ascontiguousarray(data[::-1, ::-1, :]), affine @ flip)
    image.set_data_dtype(np.int16)
    nib.save(image, path)


def write_case(case: str, path: str, limit: int) -> None:
    """Writes the scan of `case` to `path` (in its own process: the writer's memory is not measured)."""
    import nibabel as nib
    import numpy as np

    if case == "1mm":
        from brainage_tf.registration import mni152_images

        template, _ = mni152_images()
        _write_lps_int16(path, np.asarray(template.dataobj) * 1000, template.affine)
    elif case == "0.5mm":
        data, affine = _template_on((512, 512, 400), (0.5, 0.5, 0.5))
        _write_lps_int16(path, data * 1000, affine)
    elif case == "largest":
        shape = _shape_of(limit)
        data, affine = _template_on(shape, tuple(256.0 / n for n in shape))
        _write_lps_int16(path, data * 1000, affine)
    elif case == "truncated":
        header = nib.Nifti1Header()
        header.set_data_shape((2048, 2048, 2048))
        header.set_data_dtype(np.int16)
        header.set_sform(np.diag([0.1, 0.1, 0.1, 1.0]), code=1)
        with open(path, "wb") as stream:
            stream.write(header.binaryblock + b"\0" * 4 + b"\0" * 1000)  # extension flag, then no voxels
    elif case == "bomb":
        size = 1024
        header = nib.Nifti1Header()
        header.set_data_shape((size, size, size))
        header.set_data_dtype(np.uint8)
        affine = np.eye(4)
        affine[:3, 3] = -size / 2
        header.set_sform(affine, code=1)
        header.set_qform(affine, code=1)
        header["vox_offset"] = 352
        # Stripes of period 7 along x: not constant, so the old code preprocessed it to the end.
        slab = (np.arange(size * size, dtype=np.int64) % 7 * 30).astype(np.uint8).tobytes()
        with gzip.open(path, "wb", compresslevel=9) as stream:
            stream.write(header.binaryblock + b"\0" * 4)
            for _ in range(size):  # one z slice at a time: the writer never holds the 1 GB
                stream.write(slab)
    else:
        raise ValueError(f"unknown case {case!r}")


def preprocess_case(path: str, registration: str, max_voxels: int | None) -> dict:
    """Preprocesses `path` on the paper grid in this fresh process: seconds, outcome, peak RSS."""
    from brainage_tf import preprocessing
    from brainage_tf import registration as registration_module
    from brainage_tf.errors import ScanError

    options = {} if max_voxels is None else {"max_voxels": max_voxels}
    config = preprocessing.PreprocessConfig(grid="paper", registration=registration, **options)
    # Load what every worker holds anyway (template on the grid, and for affine the 1 mm template),
    # so the seconds are the scan's own.
    preprocessing.template_on_grid(preprocessing.get_grid("paper"))
    if registration == "affine":
        registration_module._registration_template()
    before_gb = _peak_rss_gb()
    start = time.perf_counter()
    try:
        result = preprocessing.preprocess_scan(path, config)
        outcome = f"accepted (NCC {result.metadata.registration_ncc:.2f})"
    except ScanError as error:
        outcome = f"{type(error).__name__}: {error.reason}"
    seconds = time.perf_counter() - start
    return dict(seconds=seconds, peak_rss_gb=_peak_rss_gb(), rss_before_gb=before_gb, outcome=outcome)


def _peak_rss_gb() -> float:
    """This process's peak RSS in GB (10^9 bytes; Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def _child(arguments: list[str]) -> str:
    command = [sys.executable, os.path.abspath(__file__), *arguments]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments)} failed:\n{completed.stderr}")
    return completed.stdout


def _header_of(path: str) -> tuple[list[int], str]:
    shape, dtype = json.loads(_child(["--describe", path]))
    return shape, dtype


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--max-voxels", type=int, default=None, help="the limit (default MAX_SCAN_VOXELS)")
    parser.add_argument("--work-dir", default=None, help="keep the scans here (default: a temporary folder)")
    parser.add_argument("--write", nargs=2, metavar=("CASE", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--run", nargs=2, metavar=("PATH", "REGISTRATION"), help=argparse.SUPPRESS)
    parser.add_argument("--describe", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write_case(args.write[0], args.write[1], args.max_voxels or _default_limit())
        return
    if args.run:
        print(json.dumps(preprocess_case(args.run[0], args.run[1], args.max_voxels)))
        return
    if args.describe:
        import nibabel as nib

        image = nib.load(args.describe)
        print(json.dumps([list(image.shape), str(image.get_data_dtype())]))
        return

    limit = [] if args.max_voxels is None else ["--max-voxels", str(args.max_voxels)]
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="preprocess_memory_")
    os.makedirs(work_dir, exist_ok=True)
    # Fill the template cache once, so no child pays for building it.
    _child(["--run", _write(work_dir, "1mm", limit), "none", *limit])
    rows = []
    for case in args.cases:
        path = _write(work_dir, case, limit)
        shape, dtype = _header_of(path)
        voxels = 1
        for n in shape:
            voxels *= n
        for registration in REGISTRATIONS.get(case, ("none",)):
            result = json.loads(_child(["--run", path, registration, *limit]))
            rows.append((case, shape, dtype, voxels, os.path.getsize(path), registration, result))
            print(f"  {case} {registration}: {' '.join(result['outcome'].split())}", file=sys.stderr)
    limit_used = args.max_voxels or _default_limit()
    print(f"preprocess_scan on the paper grid, one fresh process per row; limit {limit_used:,} voxels")
    print("| scan | shape | dtype | voxels | file | registration | outcome | seconds | peak RSS | before |")
    print("|---|---|---|---:|---:|---|---|---:|---:|---:|")
    for case, shape, dtype, voxels, size, registration, result in rows:
        file_size = f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} KB"
        print(
            f"| {case} | {'x'.join(map(str, shape))} | {dtype} | {voxels / 1e6:.1f} M | {file_size} "
            f"| {registration} | {result['outcome'].split(':')[0]} | {result['seconds']:.2f} "
            f"| {result['peak_rss_gb']:.2f} GB | {result['rss_before_gb']:.2f} GB |"
        )
    peaks = {(case, registration): result["peak_rss_gb"] for case, *_, registration, result in rows}

    def peak(case: str, registration: str) -> str:
        return f"{peaks[(case, registration)]:.2f} GB" if (case, registration) in peaks else "-"

    largest = [peaks[key] for key in peaks if key[0] == "largest"]
    print(
        f"per worker: 1 mm {peak('1mm', 'none')} (affine {peak('1mm', 'affine')}); largest accepted "
        f"{peak('largest', 'none')} (affine {peak('largest', 'affine')})"
        + (f"; 4 workers on the largest: {4 * max(largest):.1f} GB" if largest else "")
    )


def _write(work_dir: str, case: str, limit: list[str]) -> str:
    """Writes the case's scan in its own process, unless a previous run left it."""
    suffix = ".nii" if case == "truncated" else ".nii.gz"
    path = os.path.join(work_dir, f"{case}{'_' + limit[1] if case == 'largest' and limit else ''}{suffix}")
    if not os.path.exists(path):
        partial = path[: -len(suffix)] + ".partial" + suffix  # nibabel picks the format by the suffix
        _child(["--write", case, partial, *limit])
        os.replace(partial, path)
    return path


if __name__ == "__main__":
    main()
