"""`tfds build` as one function: build a cohort dataset through its Beam builder.

The pipelines' ExampleGen calls it. It takes what `tfds build` takes (a builder
name, a config name or a JSON config, a manual dir, `--beam_pipeline_options`), so
the same build runs on the runner those options name (`runner=...`: Beam's portable
runner, Flink, Spark, Dataflow; Beam's local FnApiRunner when they name none), and it
returns the prepared folder with the ingest summary the builder wrote there.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

from brainage_tf.errors import BuildError
from brainage_tf.ingest.summary import INGEST_SUMMARY_NAME, IngestSummary

# The builders of this package; importing a module registers its builder with TFDS.
BUILDER_MODULES = {
    name: f"tfds_builders.{name}.{name}_dataset_builder" for name in ("synthetic_cohort", "nihpd", "mghbch")
}

# The folder of a TFDS data dir that downloads, and the synthetic cohorts' generated scans, go to
# (`tfds build`'s default), shared by every build in that data dir.
DOWNLOADS_FOLDER = "downloads"


@dataclasses.dataclass(frozen=True)
class PreparedDataset:
    """A dataset prepared in a TFDS data dir.

    Attributes:
        name: TFDS name with config, e.g. "synthetic_cohort/tiny", as `brainage_tf.data` reads it.
        data_dir: The TFDS data dir it was built in.
        path: Its prepared folder `<data_dir>/<name>/<config>/<version>`.
        splits: Split name -> number of examples.
        summary: The ingest's row counts (rows in, written, skipped by reason).
    """

    name: str
    data_dir: str
    path: Path
    splits: dict[str, int]
    summary: IngestSummary


def parse_beam_options(options: str) -> list[str]:
    """Beam flags from `tfds build`'s comma-separated `key=value` form.

    Example:
        >>> parse_beam_options("runner=FlinkRunner,flink_master=host:8081")
        ['--runner=FlinkRunner', '--flink_master=host:8081']
    """
    return [f"--{option.strip()}" for option in options.split(",") if option.strip()]


def make_config(builder_cls, config: str):
    """A config name as given, or a config object built from a JSON object of its arguments.

    Raises:
        BuildError: Unreadable JSON, or arguments the builder's config class does not take.
    """
    if not config.lstrip().startswith("{"):
        if config not in builder_cls.builder_configs:
            raise BuildError(
                f"{builder_cls.name} has no config {config!r}; it has "
                f"{', '.join(builder_cls.builder_configs)} (or give a JSON config)."
            )
        return config
    try:
        return builder_cls.builder_config_cls(**json.loads(config))
    except (json.JSONDecodeError, TypeError, ValueError) as error:  # ValueError: a setting out of range
        raise BuildError(f"{builder_cls.name}: unusable JSON config {config} ({error}).") from None


def prepare_dataset(
    builder: str,
    config: str,
    data_dir: str,
    *,
    download_dir: str | None = None,
    manual_dir: str | None = None,
    beam_pipeline_options: str = "",
) -> PreparedDataset:
    """Builds one config of a cohort builder (nothing is done when it is prepared already).

    Args:
        builder: "synthetic_cohort", "nihpd" or "mghbch".
        config: A config name ("tiny", "small_affine", ...) or a JSON object of config arguments
            with a new name, as `tfds build --config '{...}'` takes.
        data_dir: TFDS data dir to build in.
        download_dir: Where downloads and generated scans go (default `<data_dir>/<DOWNLOADS_FOLDER>`).
        manual_dir: The user's cohort folder (nihpd, mghbch).
        beam_pipeline_options: `tfds build --beam_pipeline_options` text, e.g.
            "runner=PortableRunner,job_endpoint=localhost:8099,environment_type=EXTERNAL,...";
            "" runs on Beam's local FnApiRunner in one process (docs/ingest.md, "Beam runners").

    Returns:
        The prepared dataset.

    Raises:
        BuildError: Unknown builder or config, or no manual dir for a cohort that needs one.
        IngestSummaryError: The build left no readable ingest summary.
    """
    import tensorflow_datasets as tfds
    from apache_beam.options.pipeline_options import PipelineOptions

    if builder not in BUILDER_MODULES:
        raise BuildError(f"unknown builder {builder!r}; choose one of {', '.join(BUILDER_MODULES)}.")
    importlib.import_module(BUILDER_MODULES[builder])
    builder_cls = tfds.builder_cls(builder)
    if builder_cls.MANUAL_DOWNLOAD_INSTRUCTIONS and not manual_dir:
        raise BuildError(f"{builder} needs a manual dir: the folder holding your copy of the cohort.")
    dataset = tfds.builder(builder, config=make_config(builder_cls, config), data_dir=data_dir)
    download_config = tfds.download.DownloadConfig(
        manual_dir=manual_dir or None, beam_options=PipelineOptions(parse_beam_options(beam_pipeline_options))
    )
    dataset.download_and_prepare(
        download_dir=download_dir or str(Path(data_dir) / DOWNLOADS_FOLDER), download_config=download_config
    )
    return PreparedDataset(
        name=f"{builder}/{dataset.builder_config.name}",
        data_dir=data_dir,
        path=Path(dataset.data_dir),
        splits={name: int(split.num_examples) for name, split in dataset.info.splits.items()},
        summary=IngestSummary.read(Path(dataset.data_dir) / INGEST_SUMMARY_NAME),
    )
