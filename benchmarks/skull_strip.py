"""Dice of each skull-stripping mode against the synthetic cohort's true brain masks; seconds and peak RSS.

Run: python benchmarks/skull_strip.py [--per-band 5] [--grid paper] [--modes template deepbet]
     [--registration affine] [--exterior varied]

Generates, for each site profile (discovery: 1.5 T, 1-1.5 mm and 3 mm slices; replication: 3 T,
1 mm) and each age band (0-2, 2-6, 6-12, 12-22 y), `--per-band` subjects at full resolution with
their true brain masks (`derivatives/brainmask`); `--exterior varied` gives each site its own skull,
scalp fat and neck (`brainage_tf.synthetic.exterior`). Each mode then preprocesses every scan in a fresh
process (registration `none` by default: synthetic scans are in MNI space; with `affine`, each scan
is registered to MNI152 and the truth is carried by the same transform), which reports its peak RSS
(`ru_maxrss`) when it ends; `none` is the baseline without a mask. Dice compares the mask a mode
zeroed the volume with (`PreprocessedScan.brain_mask`) with the true mask carried onto the same
grid (trilinear, >= 0.5). Seconds per scan are wall seconds of `preprocess_scan`, the network's
load (once per process) excluded and shown apart. For the learned mode it also prints how much
brighter the mask is than the rest of the image, for real scans and for two noise volumes, which
is what `brainage_tf.skull_strip.MIN_BRAIN_CONTRAST` is set from.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BANDS = ((0.0, 2.0), (2.0, 6.0), (6.0, 12.0), (12.0, 22.0))
PROFILES = ("discovery", "replication")
# A child that runs longer has hung.
CHILD_TIMEOUT_S = 7200


def _generate(root: Path, per_band: int, seed: int, exterior: str) -> list[dict]:
    """Both profiles' subjects of every band; one dict per scan (path, truth, age, profile, site)."""
    import pandas as pd

    from brainage_tf.synthetic import CohortSpec, generate_cohort, true_brain_mask_path

    scans = []
    for profile in PROFILES:
        for band, (low, high) in enumerate(BANDS):
            folder = root / f"{profile}-{band}"
            spec = CohortSpec(
                per_band, min_age=low, max_age=high, profile=profile, seed=seed + band, exterior=exterior
            )
            generate_cohort(folder, spec, workers=2)
            participants = pd.read_csv(folder / "participants.tsv", sep="\t")
            for row in participants.itertuples():
                path = folder / row.participant_id / "anat" / f"{row.participant_id}_T1w.nii.gz"
                truth = true_brain_mask_path(folder, path)
                scans.append(dict(path=str(path), truth=str(truth), age=float(row.age), profile=profile,
                                  site=row.site))  # fmt: skip
    return scans


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


def _truth_on_grid(path: str, grid, world_to_atlas) -> np.ndarray:
    import nibabel as nib
    import nibabel.processing

    image = nib.load(path)
    moving = nib.Nifti1Image(
        np.asarray(image.dataobj, dtype=np.float32), np.array(world_to_atlas) @ image.affine
    )
    return (
        np.asarray(nibabel.processing.resample_from_to(moving, (grid.shape, grid.affine), order=1).dataobj)
        >= 0.5
    )


def _noise_volumes(folder: Path) -> list[str]:
    """A Gaussian and a Rician noise volume of a 1 mm head's size, written as NIfTI."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    shape = (172, 212, 172)
    gaussian = rng.normal(100.0, 20.0, shape)
    rician = np.hypot(rng.normal(0.0, 20.0, shape), rng.normal(0.0, 20.0, shape))
    paths = []
    for name, data in (("gaussian", gaussian), ("rician", rician)):
        path = folder / f"noise-{name}.nii.gz"
        nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([1.0, 1.0, 1.0, 1.0])), path)
        paths.append(str(path))
    return paths


def _child(mode: str, grid_name: str, registration: str, scans_json: str, out_json: str) -> None:
    """Preprocesses every scan with one mode in this fresh process; writes per-scan rows and the peak RSS."""
    from brainage_tf import preprocessing, skull_strip
    from brainage_tf.errors import ScanError
    from brainage_tf.preprocessing import PreprocessConfig, get_grid, preprocess_scan

    contrasts = {}
    original = preprocessing.check_learned_mask

    def measured(data, mask, voxel_volume_mm3, source_path):  # records the ratio the noise check reads
        outside = float(data[~mask].mean())
        contrasts[source_path] = float(data[mask].mean()) / outside if outside > 0 else float("inf")
        return original(data, mask, voxel_volume_mm3, source_path)

    preprocessing.check_learned_mask = measured
    grid = get_grid(grid_name)
    config = PreprocessConfig(grid=grid_name, registration=registration, skull_strip=mode)
    preprocess_scan(json.loads(Path(scans_json).read_text())[0]["path"], PreprocessConfig(grid=grid_name))
    start = time.perf_counter()
    skull_strip.prepare(mode)
    load_seconds = time.perf_counter() - start
    rows = []
    for scan in json.loads(Path(scans_json).read_text()):
        start = time.perf_counter()
        try:
            result = preprocess_scan(scan["path"], config)
            outcome = "ok"
        except ScanError as error:
            result, outcome = None, error.reason
        seconds = time.perf_counter() - start
        row = dict(scan, seconds=seconds, outcome=outcome, contrast=contrasts.get(scan["path"]))
        if result is not None and result.brain_mask is not None and scan.get("truth"):
            truth = _truth_on_grid(scan["truth"], grid, result.metadata.world_to_atlas)
            row["dice"] = _dice(result.brain_mask, truth)
            row["registration_ncc"] = result.metadata.registration_ncc
            row["volume_ml"] = result.metadata.brain_volume_ml
        rows.append(row)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    Path(out_json).write_text(json.dumps(dict(rows=rows, peak_gb=peak_gb, load_seconds=load_seconds)))


def _band(age: float) -> str:
    for low, high in BANDS:
        if low <= age < high or age == high == BANDS[-1][1]:
            return f"{low:g}-{high:g}"
    raise ValueError(age)


def _report(results: dict[str, dict], modes: list[str]) -> None:
    masked = [mode for mode in modes if mode != "none"]
    print("\nDice against the true brain mask, mean (min), by age band and site profile:")
    header = "| mode | " + " | ".join(f"{low:g}-{high:g} y" for low, high in BANDS) + " | all | n |"
    for profile in (*PROFILES, "both"):
        print(f"\n{profile}:\n{header}\n|---|" + "---:|" * (len(BANDS) + 2))
        for mode in masked:
            rows = [r for r in results[mode]["rows"] if "dice" in r and profile in (r["profile"], "both")]
            cells = []
            for low, high in BANDS:
                values = [r["dice"] for r in rows if _band(r["age"]) == f"{low:g}-{high:g}"]
                cells.append(f"{np.mean(values):.3f} ({min(values):.3f})" if values else "-")
            every = [r["dice"] for r in rows]
            print(
                f"| {mode} | "
                + " | ".join(cells)
                + f" | {np.mean(every):.3f} ({min(every):.3f}) | {len(every)} |"
            )
    print("\nRegistration NCC with the template (inside its brain mask), mean (min), both profiles:")
    print(f"{header}\n|---|" + "---:|" * (len(BANDS) + 2))
    for mode in masked:
        rows = [r for r in results[mode]["rows"] if r.get("registration_ncc") is not None]
        cells = []
        for low, high in BANDS:
            values = [r["registration_ncc"] for r in rows if _band(r["age"]) == f"{low:g}-{high:g}"]
            cells.append(f"{np.mean(values):.3f} ({min(values):.3f})" if values else "-")
        every = [r["registration_ncc"] for r in rows] or [float("nan")]
        print(
            f"| {mode} | " + " | ".join(cells) + f" | {np.mean(every):.3f} ({min(every):.3f}) | {len(rows)} |"
        )
    print("\n| mode | seconds per scan, mean (max) | network load, s | peak RSS, GB | scans | skipped |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode in modes:
        rows = [r for r in results[mode]["rows"] if r.get("truth")]
        seconds = [r["seconds"] for r in rows]
        skipped = sum(r["outcome"] != "ok" for r in rows)
        load, peak = results[mode]["load_seconds"], results[mode]["peak_gb"]
        cells = [
            f"{np.mean(seconds):.2f} ({max(seconds):.2f})",
            f"{load:.2f}",
            f"{peak:.2f}",
            len(rows),
            skipped,
        ]
        print(f"| {mode} | " + " | ".join(str(cell) for cell in cells) + " |")
    for mode in masked:
        rows = results[mode]["rows"]
        heads = [r["contrast"] for r in rows if r.get("truth") and r["contrast"] is not None]
        if heads:
            print(
                f"\n{mode}: brain / rest of image, heads: min {min(heads):.2f}, median {np.median(heads):.2f}"
            )
        for r in rows:
            if not r.get("truth"):
                contrast = "n/a" if r["contrast"] is None else f"{r['contrast']:.2f}"
                print(f"{mode}: {Path(r['path']).name}: contrast {contrast}, outcome: {r['outcome']}")
        for r in rows:
            if r.get("truth") and r["outcome"] != "ok":
                print(f"{mode}: skipped {r['path']}: {r['outcome']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-band", type=int, default=5, help="Subjects per age band and profile.")
    parser.add_argument("--grid", default="paper")
    parser.add_argument("--registration", default="none", choices=("none", "affine"))
    parser.add_argument("--modes", nargs="+", default=["none", "template", "deepbet"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exterior", default="fixed", choices=("fixed", "varied"))
    parser.add_argument("--keep", type=Path, help="Keep the generated cohorts and results in this folder.")
    parser.add_argument(
        "--child", nargs=5, metavar=("MODE", "GRID", "REG", "SCANS", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="skull_strip_benchmark_"))
    root.mkdir(parents=True, exist_ok=True)
    scans_json = root / "scans.json"
    if not scans_json.exists():
        scans = _generate(root, args.per_band, args.seed, args.exterior)
        noise = [
            dict(path=path, truth="", age=float("nan"), profile="", site="") for path in _noise_volumes(root)
        ]
        scans_json.write_text(json.dumps(scans + noise))
    results = {}
    for mode in args.modes:
        out = root / f"results-{mode}{'' if args.registration == 'none' else '-' + args.registration}.json"
        if not out.exists():  # a kept folder's finished modes are reported again, not measured again
            command = [
                sys.executable,
                __file__,
                "--child",
                mode,
                args.grid,
                args.registration,
                str(scans_json),
                str(out),
            ]
            subprocess.run(command, check=True, timeout=CHILD_TIMEOUT_S)
        results[mode] = json.loads(out.read_text())
    scans = len(json.loads(scans_json.read_text())) - 2
    print(f"{scans} scans on the {args.grid} grid, registration {args.registration}; {root}")
    _report(results, args.modes)


if __name__ == "__main__":
    main()
