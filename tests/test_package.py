"""Package-level contracts: light imports and the CLI entry points."""

import subprocess
import sys

import pytest

NUMPY_ONLY_MODULES = ["brainage_tf", "brainage_tf.preprocessing", "brainage_tf.synthetic"]


@pytest.mark.parametrize("module", NUMPY_ONLY_MODULES)
def test_numpy_only_modules_do_not_import_tensorflow(module):
    # TensorFlow takes seconds to import; preprocessing and data generation must not pay for it.
    code = f"import sys, {module}; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert output.split() == ["False", "False"]
