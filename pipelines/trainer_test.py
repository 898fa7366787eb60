"""The Trainer sets the dataset, data dir and run dir itself; train_args may not."""

import pytest

from brainage_tf.errors import ComponentError
from pipelines import trainer


@pytest.mark.parametrize("flag", ["--out", "--data_dir=/elsewhere", "--data-dir", "--dataset", "--resume"])
def test_flags_the_trainer_owns_are_refused_before_any_work(tmp_path, flag):
    with pytest.raises(ComponentError, match=f"train_args may not set {flag}: the Trainer sets them itself"):
        trainer.run(str(tmp_path), str(tmp_path), {"dataset": "d/tiny", "content_fingerprint": "x"},
                    "slice_lstm", "demo", ["--epochs", "1", flag])  # fmt: skip
    assert not any(tmp_path.iterdir())
