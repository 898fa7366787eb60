"""The embedded cohort is rebuilt when the folder in the data dir was prepared by an older builder version."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from brainage_tf.errors import DatasetError
from tfds_builders import embedded
from tfds_builders.cohort_builder import CohortBuilder

# A fresh interpreter, where no test has registered the synthetic_cohort builder yet.
ENSURE_PREPARED = """
import sys
from tfds_builders import embedded

built = []
embedded.build_synthetic_cohort = lambda config, data_dir, **_: built.append(config) or ""
embedded.ensure_prepared("synthetic_cohort/tiny", sys.argv[1], log=lambda line: None)
print(built)
"""


def test_a_dataset_an_older_builder_version_prepared_is_rebuilt(tmp_path):
    # What a 1.0.0 build left: a prepared synthetic_cohort/tiny, without the preprocessing record.
    features = tfds.features.FeaturesDict({"age": np.float32})
    tfds.dataset_builders.store_as_tfds_dataset(
        name="synthetic_cohort", version="1.0.0", features=features, config="tiny",
        split_datasets={"train": [(0, {"age": np.float32(3.0)})]}, data_dir=str(tmp_path),
    )  # fmt: skip
    assert str(CohortBuilder.VERSION) != "1.0.0"
    done = subprocess.run(
        [sys.executable, "-c", ENSURE_PREPARED, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "['tiny']"


def test_an_unknown_config_that_is_not_prepared_is_one_line_naming_how_to_build_it(tmp_path):
    lines = []
    with pytest.raises(DatasetError) as refused:
        embedded.ensure_prepared("synthetic_cohort/varied_mine", str(tmp_path), log=lines.append)
    message = str(refused.value)
    assert "\n" not in message and lines == []  # refused before anything is built
    start = f"synthetic_cohort/varied_mine is not prepared in {tmp_path}, and 'varied_mine' is not one"
    assert message.startswith(start)
    assert "small, " in message and '--config \'{"name": "varied_mine", ...}\'' in message
