"""The embedded synthetic developmental cohort: no manual download, deterministic.

The builder writes a discovery-profile and a replication-profile BIDS folder with
`brainage_tf.synthetic.generate_cohort` (fixed seeds) into the download folder,
then reads them with the same BIDS reader, split assignment and Beam ingest as
the nihpd and mghbch builders.
"""

from __future__ import annotations

import tensorflow_datasets as tfds
from etils import epath

from brainage_tf.defaults import MAX_AGE_YEARS, MIN_AGE_YEARS, TEMPO_COLUMN, YOUNG_MAX_AGE_YEARS
from brainage_tf.ingest import AGE_BIN_WIDTH_YEARS, TEST_FRACTION, ScanRecord, assign_splits, read_bids
from brainage_tf.ingest.splits import REPLICATION
from brainage_tf.progress import on_terminal
from brainage_tf.synthetic.sampling import DEFAULT_AGE_DISTRIBUTION
from brainage_tf.synthetic.spec import CohortSpec
from tfds_builders.cohort_builder import CohortBuilder, CohortConfig, make_configs

GENERATED_FOLDER = "synthetic_bids"
# The configs of `python -m pipelines.paper_experiment --cohort synthetic [--size tiny]`.
EXPERIMENT_CONFIG = "experiment"
EXPERIMENT_TINY_CONFIG = "experiment_tiny"


class SyntheticConfig(CohortConfig):
    """A CohortConfig plus the size, ages and seeds of the generated cohorts."""

    def __init__(
        self,
        *,
        discovery_subjects: int = 160,
        replication_subjects: int = 40,
        discovery_ages: tuple[float, float] = (MIN_AGE_YEARS, MAX_AGE_YEARS),
        replication_ages: tuple[float, float] = (MIN_AGE_YEARS, YOUNG_MAX_AGE_YEARS),
        sessions: int = 1,
        seed: int = 0,
        voxel_scale: float = 1.0,
        generator_workers: int | None = None,
        discovery_age_distribution: str = DEFAULT_AGE_DISTRIBUTION,
        replication_sessions: int | None = None,
        exterior: str = "fixed",
        **kwargs,
    ):
        """Creates the config.

        Args:
          discovery_subjects: Subjects of the discovery profile (-> train/test 80/20).
          replication_subjects: Subjects of the replication profile (-> replication).
          discovery_ages: (min, max) age in years of the discovery profile.
          replication_ages: (min, max) age in years of the replication profile.
          sessions: Visits per subject (longitudinal when > 1).
          seed: Seed of the discovery cohort; the replication cohort uses seed + 1.
          voxel_scale: Multiplies the generated scans' voxel size (> 1 for fast tests).
          generator_workers: Processes of the generator (default: all CPUs); the
            generated files do not depend on it.
          discovery_age_distribution: First-visit ages of the discovery profile,
            "log_uniform" or "nihpd" (brainage_tf.synthetic.sampling); the replication
            profile is always log-uniform.
          replication_sessions: Visits per replication subject (None: `sessions`).
          exterior: "fixed", or "varied": each site its own skull, scalp fat and neck
            coverage (brainage_tf.synthetic.exterior), both profiles.
          **kwargs: CohortConfig arguments (name, grid, registration, strict).
        """
        super().__init__(**kwargs)
        self.discovery_subjects = discovery_subjects
        self.replication_subjects = replication_subjects
        self.discovery_ages = tuple(discovery_ages)
        self.replication_ages = tuple(replication_ages)
        self.sessions = sessions
        self.seed = seed
        self.voxel_scale = voxel_scale
        self.generator_workers = generator_workers
        self.discovery_age_distribution = discovery_age_distribution
        self.replication_sessions = sessions if replication_sessions is None else replication_sessions
        self.exterior = exterior

    def cohorts(self) -> list[tuple[str, CohortSpec]]:
        """(profile, spec) of both generated cohorts."""
        return [
            (
                "discovery",
                CohortSpec(
                    n_subjects=self.discovery_subjects,
                    min_age=self.discovery_ages[0],
                    max_age=self.discovery_ages[1],
                    profile="discovery",
                    seed=self.seed,
                    sessions=self.sessions,
                    voxel_scale=self.voxel_scale,
                    age_distribution=self.discovery_age_distribution,
                    exterior=self.exterior,
                ),
            ),
            (
                "replication",
                CohortSpec(
                    n_subjects=self.replication_subjects,
                    min_age=self.replication_ages[0],
                    max_age=self.replication_ages[1],
                    profile="replication",
                    seed=self.seed + 1,
                    sessions=self.replication_sessions,
                    voxel_scale=self.voxel_scale,
                    exterior=self.exterior,
                ),
            ),
        ]


def cohort_folder_name(spec: CohortSpec) -> str:
    """Folder name that encodes every field of the spec, so a reuse is always exact."""
    return (
        f"{spec.profile}_n{spec.n_subjects}_age{spec.min_age:g}-{spec.max_age:g}"
        f"_ses{spec.sessions}_seed{spec.seed}_vox{spec.voxel_scale:g}"
        # Named only when not the default, so folders generated before the option are reused.
        + ("" if spec.age_distribution == DEFAULT_AGE_DISTRIBUTION else f"_{spec.age_distribution}")
        + ("" if spec.exterior == "fixed" else f"_{spec.exterior}")
    )


def ensure_generated(
    root: epath.PathLike, spec: CohortSpec, workers: int | None = None, progress: bool = False
) -> epath.Path:
    """Generates one synthetic BIDS cohort below `root` unless it is already there.

    The cohort is written to a `.incomplete` folder and renamed when done, so a
    folder with the final name is always complete.

    Args:
      root: Parent folder (the download folder).
      spec: The cohort.
      workers: Generator processes (None: all CPUs).
      progress: Show the package's progress bar, one update per subject.

    Returns:
      The cohort's BIDS folder.
    """
    from brainage_tf.synthetic import generate_cohort  # heavy: only when generating

    folder = epath.Path(root) / cohort_folder_name(spec)
    if folder.exists() and _lists_ground_truth(folder):
        return folder
    partial = folder.parent / f"{folder.name}.incomplete"
    if partial.exists():
        partial.rmtree()
    partial.mkdir(parents=True)
    generate_cohort(str(partial), spec, workers=workers, progress=progress)
    if folder.exists():  # written before the generator listed its ground truth; the same scans again
        folder.rmtree()
    partial.rename(folder)
    return folder


def _lists_ground_truth(folder: epath.Path) -> bool:
    """Whether a generated cohort's participants.tsv has the tempo column (generators since 1.2.0)."""
    header = (folder / "participants.tsv").read_text().split("\n", 1)[0]
    return TEMPO_COLUMN in header.split("\t")


# What both experiment configs share. The small grid, since resnet3d needs 33 voxels along one
# axis and the tiny grid has at most 30.
_EXPERIMENT = dict(
    grid="small", registration="none", replication_sessions=1, discovery_age_distribution="nihpd"
)


class Builder(CohortBuilder):
    """Synthetic T1w developmental cohort written as BIDS and ingested like real data."""

    # Synthetic scans are in MNI space already; affine configs would only cost
    # `tfds build` (which builds every listed config) 15-30 min each.
    BUILDER_CONFIGS = make_configs(SyntheticConfig, registrations=("none",)) + [
        # The paper's experiment (docs/paper_experiment.md): an NIH-PD-shaped discovery cohort
        # (infant arm + school-age arm, up to 3 visits) and a cross-sectional 0-6 y replication cohort.
        SyntheticConfig(
            name=EXPERIMENT_CONFIG,
            discovery_subjects=300,
            replication_subjects=100,
            sessions=3,
            **_EXPERIMENT,
        ),
        # The same design in seconds: 16 + 6 subjects with 4 mm voxels.
        SyntheticConfig(
            name=EXPERIMENT_TINY_CONFIG,
            discovery_subjects=16,
            replication_subjects=6,
            sessions=2,
            voxel_scale=3.9,
            **_EXPERIMENT,
        ),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "small"
    SPLIT_NAMES = ("train", "test", REPLICATION)

    def age_range(self, cohort: str) -> tuple[float, float]:
        """The ages each profile was generated in, unless a JSON config gives age_range."""
        config = self.builder_config
        return config.age_range or (
            config.discovery_ages if cohort == "discovery" else config.replication_ages
        )

    def _split_records(self, dl_manager: tfds.download.DownloadManager) -> list[tuple[str, ScanRecord]]:
        root = epath.Path(dl_manager.download_dir) / GENERATED_FOLDER
        root.mkdir(parents=True, exist_ok=True)
        split_records = []
        for profile, spec in self.builder_config.cohorts():
            # `tfds build` on a terminal shows the generation as `python -m brainage_tf.train` does.
            workers = self.builder_config.generator_workers
            records = read_bids(
                ensure_generated(root, spec, workers=workers, progress=on_terminal()), cohort=profile
            )
            if profile == "discovery":
                splits = assign_splits(
                    records,
                    test_fraction=TEST_FRACTION,
                    bin_width_years=AGE_BIN_WIDTH_YEARS,
                    age_range=self.age_range(profile),
                )
                split_records += [
                    (splits.get((profile, record.subject_id), ""), record) for record in records
                ]
            else:
                split_records += [(REPLICATION, record) for record in records]
        return split_records
