"""The Trainer sets the dataset, data dir and run dir itself; train_args may not."""

import re

import pytest

from brainage_tf.errors import ComponentError
from pipelines import trainer


@pytest.mark.parametrize("flag", ["--out", "--data_dir=/elsewhere", "--data-dir", "--dataset", "--resume"])
def test_flags_the_trainer_owns_are_refused_before_any_work(tmp_path, flag):
    with pytest.raises(ComponentError, match=f"train_args may not set {flag}: the Trainer sets them itself"):
        trainer.run(str(tmp_path), str(tmp_path), {"dataset": "d/tiny", "content_fingerprint": "x"},
                    "slice_lstm", "demo", ["--epochs", "1", flag])  # fmt: skip
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("flag", "reason"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--epochs", "many"], "argument --epochs: invalid int value: 'many'"),
        (["--precision", "bfloat8"], "unknown precision 'bfloat8'; choose one of auto"),
    ],
)
def test_a_bad_training_flag_is_the_components_error_in_the_parsers_words(tmp_path, flag, reason):
    with pytest.raises(ComponentError, match=f"^training refused: {re.escape(reason)}"):
        trainer.run(str(tmp_path / "store"), str(tmp_path), {"dataset": "d/tiny", "content_fingerprint": "x"},
                    "slice_lstm", "demo", flag)  # fmt: skip
