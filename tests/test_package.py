"""Package-level contracts: which modules stay light, and which way imports point."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

# Preprocessing, data generation, ingest reading and the training flags must not pay
# TensorFlow's seconds-long import: flags are checked before any heavy work.
NUMPY_ONLY_MODULES = [
    "brainage_tf",
    "brainage_tf.defaults",
    "brainage_tf.errors",
    "brainage_tf.model_registry",
    "brainage_tf.preprocessing",
    "brainage_tf.grids",
    "brainage_tf.preprocessing_record",
    "brainage_tf.scan_file",
    "brainage_tf.resampling",
    "brainage_tf.skull_strip",
    "brainage_tf.synthetic",
    "brainage_tf.synthetic.spec",
    "brainage_tf.progress",
    "brainage_tf.ingest",
    "brainage_tf.training.config",
    "brainage_tf.training.run_directory",
    "brainage_tf.training.precision",
    "brainage_tf.training.flags",
    "brainage_tf.training.init_from",
    "brainage_tf.train",
    "brainage_tf.evaluation.metrics",
    "brainage_tf.evaluation.calibration",
    "brainage_tf.evaluation.ood",
    "brainage_tf.evaluation.report",
    "brainage_tf.evaluate",
    "brainage_tf.export",
    "brainage_tf.predict",
    "brainage_tf.explain",
    "brainage_tf.calibrate",
    "brainage_tf.serving.batch",
    "brainage_tf.serving.predictions",
    "brainage_tf.serving.explanations",
    # A reused pipeline component starts without TensorFlow (pipelines.evaluator imports the pusher).
    "pipelines.example_gen",
    "pipelines.trainer",
    "pipelines.evaluator",
]
# The library layer reads prepared datasets and never imports the builders, which import it.
LIBRARY_MODULES = [
    "brainage_tf.data",
    "brainage_tf.ingest",
    "brainage_tf.ingest.beam",
    "brainage_tf.models",
    "brainage_tf.training.trainer",
    "brainage_tf.synthetic",
    "brainage_tf.evaluation.run_evaluation",
    "brainage_tf.explanation.group_maps",
    "brainage_tf.serving.export",
    "brainage_tf.serving.predictions",
]
BUILDER_MODULES = [
    "tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder",
    "tfds_builders.nihpd.nihpd_dataset_builder",
    "tfds_builders.mghbch.mghbch_dataset_builder",
    "tfds_builders.embedded",
]


def _loaded_after_import(module: str, candidates: list[str]) -> list[bool]:
    code = f"import sys, {module}; print(*[name in sys.modules for name in {candidates!r}])"
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return [flag == "True" for flag in output.split()]


@pytest.mark.parametrize("module", NUMPY_ONLY_MODULES)
def test_light_modules_do_not_import_tensorflow(module):
    assert _loaded_after_import(module, ["tensorflow", "keras"]) == [False, False]


def test_preprocessing_imports_torch_only_when_the_learned_mask_is_used():
    assert _loaded_after_import("brainage_tf.preprocessing", ["torch", "deepbet"]) == [False, False]


@pytest.mark.parametrize("module", LIBRARY_MODULES)
def test_library_modules_do_not_import_the_builders(module):
    assert _loaded_after_import(module, ["tfds_builders"]) == [False]


@pytest.mark.parametrize("module", BUILDER_MODULES)
def test_builders_do_not_import_the_entry_points(module):
    assert _loaded_after_import(module, ["brainage_tf.train"]) == [False]


# The command modules: drivers that parse flags and call the library. Nothing below them imports one.
COMMAND_MODULES = {
    "brainage_tf.train",
    "brainage_tf.evaluate",
    "brainage_tf.export",
    "brainage_tf.predict",
    "brainage_tf.explain",
    "brainage_tf.calibrate",
    "brainage_tf.synthetic.__main__",
}


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at its top or in functions (`from a import b` gives a.b too)."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    return imported


def test_no_library_module_imports_a_command_module():
    root = Path(__file__).resolve().parent.parent
    offenders = {}
    for package in ("brainage_tf", "tfds_builders"):
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            if name in COMMAND_MODULES or path.name.endswith("_test.py"):
                continue
            found = _imported_modules(path) & COMMAND_MODULES
            if found:
                offenders[name] = sorted(found)
    assert offenders == {}


def test_every_error_class_is_defined_in_the_errors_module():
    # BaseException subclasses (serving.batch.Interrupted) carry a signal, not an error.
    root = Path(__file__).resolve().parent.parent
    defined = {}
    for package in ("brainage_tf", "tfds_builders", "pipelines"):
        for path in sorted((root / package).rglob("*.py")):
            if path.name.endswith("_test.py") or path.name == "conftest.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                bases = [ast.unparse(base).rsplit(".", 1)[-1] for base in getattr(node, "bases", [])]
                if isinstance(node, ast.ClassDef) and any(
                    base.endswith(("Error", "Exception")) and base != "BaseException" for base in bases
                ):
                    defined[node.name] = str(path.relative_to(root))
    assert set(defined.values()) == {"brainage_tf/errors.py"}, defined


def test_the_distribution_takes_its_version_from_the_package():
    from setuptools.config.setupcfg import read_configuration

    import brainage_tf

    setup_cfg = Path(__file__).resolve().parent.parent / "setup.cfg"
    assert read_configuration(setup_cfg)["metadata"]["version"] == brainage_tf.__version__
