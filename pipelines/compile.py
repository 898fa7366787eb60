"""Compile the pipeline for Kubeflow Pipelines or Vertex AI: `python -m pipelines.compile --out FILE.yaml`.

The YAML (KFP IR) is what a Kubeflow Pipelines UI or `kfp.Client().create_run_from_pipeline_package`
and Vertex AI `PipelineJob(template_path=...)` take. Every task runs in the
pipeline's `image` parameter, which must hold this package (docs/pipelines.md).
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m pipelines.compile`; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.compile", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="YAML file to write.")
    args = parser.parse_args(argv)
    if not args.out.parent.is_dir():
        parser.error(f"--out: folder {args.out.parent} does not exist.")
    from kfp import compiler

    from pipelines.brain_age_pipeline import brain_age_pipeline

    compiler.Compiler().compile(brain_age_pipeline, str(args.out))
    print(f"wrote {args.out}: example-gen -> trainer -> evaluator -> pusher")
    return 0


if __name__ == "__main__":
    sys.exit(main())
