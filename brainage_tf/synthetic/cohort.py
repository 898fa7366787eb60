"""Write a synthetic cohort as a BIDS dataset, one subject per job, in parallel processes.

Each subject depends only on (seed, profile, subject index), never on the worker count, and
files are written with a fixed gzip mtime, so the same seed gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

from brainage_tf import __version__
from brainage_tf.defaults import DEVELOPMENTAL_AGE_COLUMN, TEMPO_COLUMN
from brainage_tf.progress import progress_bar
from brainage_tf.synthetic.anatomy import TemplateAnatomy, load_template_anatomy
from brainage_tf.synthetic.exterior import site_exterior
from brainage_tf.synthetic.rendering import (
    SubjectTraits,
    draw_subject_traits,
    render_scan_with_mask,
    write_nifti_gz,
)
from brainage_tf.synthetic.sampling import DEFAULT_AGE_DISTRIBUTION, draw_first_visit, later_visits
from brainage_tf.synthetic.sites import PROFILES
from brainage_tf.synthetic.spec import CohortSpec, check_workers


@dataclasses.dataclass(frozen=True)
class _SubjectJob:
    """Everything one worker needs to write one subject (picklable)."""

    index: int
    spec: CohortSpec
    out_dir: str


PARTICIPANT_COLUMNS = ["participant_id", "age", "sex", "site", TEMPO_COLUMN, DEVELOPMENTAL_AGE_COLUMN]
# BIDS sidecars of the tables: the truth columns are described, so a reader knows what they hold.
_AGE = {"Description": "Age at the scan (participants.tsv: the first visit).", "Units": "year"}
_DEVELOPMENTAL_AGE = {
    "Description": "Age the anatomy of the scan was drawn at: age x tempo. Synthetic ground truth; "
    "the true brain-age gap is developmental_age - age.",
    "Units": "year",
}
PARTICIPANTS_SIDECAR = {
    "age": _AGE,
    "sex": {"Description": "Sex drawn for the subject.", "Levels": {"M": "male", "F": "female"}},
    "site": {"Description": "Simulated acquisition site (scanner profile)."},
    TEMPO_COLUMN: {
        "Description": "Developmental tempo of the subject: its anatomy at every scan is drawn at "
        "age x tempo (log-normal around 1). Synthetic ground truth.",
    },
    DEVELOPMENTAL_AGE_COLUMN: _DEVELOPMENTAL_AGE,
}
SESSIONS_SIDECAR = {
    "age": {"Description": "Age at the session.", "Units": "year"},
    DEVELOPMENTAL_AGE_COLUMN: _DEVELOPMENTAL_AGE,
}
# The true brain masks: a BIDS derivative dataset of its own (BIDS 1.9, "Derivatives: masks").
BRAIN_MASK_FOLDER = Path("derivatives", "brainmask")
_BRAIN_MASK_ENTITIES = "desc-brain_mask"
BRAIN_MASK_SUFFIX = f"_{_BRAIN_MASK_ENTITIES}.nii.gz"
# The masks' sidecar, one for all of them by BIDS inheritance: what "brain" means here.
BRAIN_MASK_SIDECAR = {
    "Type": "Brain",
    "Description": "True brain mask of the scan on its own grid: the anatomy that rendered it (brain and "
    "the CSF inside the MNI152 brain mask; no extra-axial CSF, skull or scalp), grown and deformed "
    "exactly as the scan. Synthetic ground truth.",
}
# Digits written: ages to 0.0001 y (under an hour), the tempo to 1e-6.
_AGE_DECIMALS, _TEMPO_DECIMALS = 4, 6


# Set once per worker process so the template is pickled once per worker, not once per subject.
_WORKER_ANATOMY: TemplateAnatomy | None = None


def _init_worker(anatomy: TemplateAnatomy) -> None:
    global _WORKER_ANATOMY
    _WORKER_ANATOMY = anatomy


def _subject_plan(job: _SubjectJob) -> tuple[SubjectTraits, list[float]]:
    """One subject's traits and visit ages: cheap, and the same draws whether or not scans are rendered."""
    spec = job.spec
    profile_key = PROFILES.index(spec.profile)
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(profile_key, job.index)))
    first_age, gap, last_age = draw_first_visit(rng, spec.age_distribution, spec.min_age, spec.max_age)
    traits = draw_subject_traits(rng, spec.profile)
    return traits, later_visits(rng, first_age, spec.sessions, gap, last_age)


def _generate_subject(job: _SubjectJob) -> dict:
    """Write every session of one subject; returns its participants.tsv row."""
    anatomy, spec = _WORKER_ANATOMY, job.spec
    profile_key = PROFILES.index(spec.profile)
    traits, ages = _subject_plan(job)
    first_age = ages[0]
    subject = f"sub-{job.index + 1:04d}"
    subject_dir = Path(job.out_dir) / subject
    for session_index, age in enumerate(ages):
        session_rng = np.random.default_rng(
            np.random.SeedSequence(spec.seed, spawn_key=(profile_key, job.index, session_index, 1))
        )
        exterior = site_exterior(spec.exterior, traits.site.name)
        scan, brain = render_scan_with_mask(anatomy, traits, age, session_rng, spec.voxel_scale, exterior)
        if spec.sessions > 1:
            session = f"ses-{session_index + 1}"
            relative = Path(subject, session, "anat", f"{subject}_{session}")
        else:
            relative = Path(subject, "anat", subject)
        write_nifti_gz(scan, Path(job.out_dir) / f"{relative}_T1w.nii.gz")
        write_nifti_gz(brain, Path(job.out_dir) / BRAIN_MASK_FOLDER / f"{relative}{BRAIN_MASK_SUFFIX}")
    if spec.sessions > 1:
        sessions_table = pd.DataFrame({
            "session_id": [f"ses-{i + 1}" for i in range(len(ages))],
            "age": [round(a, _AGE_DECIMALS) for a in ages],
            DEVELOPMENTAL_AGE_COLUMN: [round(traits.developmental_age(a), _AGE_DECIMALS) for a in ages],
        })  # fmt: skip
        sessions_table.to_csv(subject_dir / f"{subject}_sessions.tsv", sep="\t", index=False)
    return {
        "participant_id": subject,
        "age": round(first_age, _AGE_DECIMALS),
        "sex": traits.sex,
        "site": traits.site.name,
        TEMPO_COLUMN: round(traits.tempo, _TEMPO_DECIMALS),
        DEVELOPMENTAL_AGE_COLUMN: round(traits.developmental_age(first_age), _AGE_DECIMALS),
    }


def true_brain_mask_path(bids_root: str | os.PathLike, scan_path: str | os.PathLike) -> Path:
    """Where `generate_cohort` wrote the true brain mask of a scan of the cohort at `bids_root`.

    Example: ``sub-0001/anat/sub-0001_T1w.nii.gz`` -> ``derivatives/brainmask/sub-0001/anat/
    sub-0001_desc-brain_mask.nii.gz``.
    """
    relative = Path(scan_path).resolve().relative_to(Path(bids_root).resolve())
    name = relative.name.removesuffix("_T1w.nii.gz") + BRAIN_MASK_SUFFIX
    return Path(bids_root) / BRAIN_MASK_FOLDER / relative.parent / name


def plan_visits(spec: CohortSpec) -> pd.DataFrame:
    """The visits `generate_cohort` would write for a spec, without rendering a scan.

    It makes the same draws as the generator, so a cohort's age groups can be counted in
    milliseconds before minutes are spent on rendering.

    Returns:
        One row per visit: ``participant_id, session`` (1-based) ``, age, tempo, developmental_age``
        (years, unrounded; the ground truth the scan is rendered at).
    """
    rows = []
    for index in range(spec.n_subjects):
        traits, ages = _subject_plan(_SubjectJob(index, spec, ""))
        rows += [
            (f"sub-{index + 1:04d}", session + 1, age, traits.tempo, traits.developmental_age(age))
            for session, age in enumerate(ages)
        ]
    columns = ["participant_id", "session", "age", TEMPO_COLUMN, DEVELOPMENTAL_AGE_COLUMN]
    return pd.DataFrame(rows, columns=columns)


def generate_cohort(
    out_dir: str | os.PathLike,
    spec: CohortSpec,
    *,
    workers: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Write a synthetic BIDS cohort of T1-weighted scans.

    Each subject depends only on (seed, profile, subject index), never on the worker count.
    Workers are spawned processes, so a script calling this with workers > 1 needs the usual
    ``if __name__ == "__main__":`` guard.

    Args:
        out_dir: Dataset root (created if missing).
        spec: The cohort (size, ages, profile, seed, sessions, voxel scale, age distribution).
        workers: Parallel processes; defaults to ``os.cpu_count()``.
        progress: Show the package's progress bar (one update per subject) on stderr.

    Returns:
        The participants table as written to participants.tsv: ``participant_id, age, sex, site``
        and the ground truth ``tempo, developmental_age`` (that of the first visit).

    Raises:
        UsageError: When `workers` is below 1.
    """
    check_workers(workers)
    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    workers = min(workers or os.cpu_count() or 1, spec.n_subjects)
    anatomy = load_template_anatomy()
    jobs = [_SubjectJob(index, spec, str(out_path)) for index in range(spec.n_subjects)]
    bar = progress_bar(
        total=len(jobs), description=f"synthetic {spec.profile}", unit="subject", enabled=progress
    )
    if workers == 1:
        _init_worker(anatomy)
        rows = []
        for job in jobs:
            rows.append(_generate_subject(job))
            bar.update()
    else:
        # spawn, not fork: the caller may already hold TensorFlow threads.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(anatomy,)
        ) as pool:
            futures = [pool.submit(_generate_subject, job) for job in jobs]
            for _ in as_completed(futures):
                bar.update()
            rows = [future.result() for future in futures]
    bar.close()
    participants = pd.DataFrame(rows, columns=PARTICIPANT_COLUMNS)
    participants.to_csv(out_path / "participants.tsv", sep="\t", index=False)
    (out_path / "participants.json").write_text(json.dumps(PARTICIPANTS_SIDECAR, indent=2) + "\n")
    if spec.sessions > 1:  # BIDS inheritance: one top-level sidecar describes every sub-X_sessions.tsv
        (out_path / "sessions.json").write_text(json.dumps(SESSIONS_SIDECAR, indent=2) + "\n")
    (out_path / "dataset_description.json").write_text(json.dumps(_description(spec), indent=2) + "\n")
    _write_mask_descriptions(out_path / BRAIN_MASK_FOLDER, spec)
    return participants


def _write_mask_descriptions(folder: Path, spec: CohortSpec) -> None:
    """The derivative's dataset_description.json (BIDS requires one) and the masks' shared sidecar."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = _description(spec)
    description = {
        "Name": "True brain masks of the brainage_tf synthetic cohort",
        "BIDSVersion": raw["BIDSVersion"],
        "DatasetType": "derivative",
        "License": raw["License"],
        "GeneratedBy": raw["GeneratedBy"],
    }
    (folder / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n")
    (folder / f"{_BRAIN_MASK_ENTITIES}.json").write_text(json.dumps(BRAIN_MASK_SIDECAR, indent=2) + "\n")


def _description(spec: CohortSpec) -> dict:
    """The dataset_description.json of a cohort, naming every argument of its spec."""
    # Named only when not the default, so earlier cohorts keep their exact bytes.
    distribution = (
        ""
        if spec.age_distribution == DEFAULT_AGE_DISTRIBUTION
        else f" age_distribution={spec.age_distribution}"
    )
    distribution += "" if spec.exterior == "fixed" else f" exterior={spec.exterior}"
    return {
        "Name": f"brainage_tf synthetic developmental cohort ({spec.profile})",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "License": "CC0",
        "GeneratedBy": [
            {
                "Name": "brainage_tf.synthetic",
                "Version": __version__,
                "Description": f"profile={spec.profile} seed={spec.seed} subjects={spec.n_subjects} "
                f"ages={spec.min_age}-{spec.max_age} "
                f"sessions={spec.sessions} voxel_scale={spec.voxel_scale}{distribution}; "
                "built from the MNI152 2009a template shipped by nilearn",
            }
        ],
    }
