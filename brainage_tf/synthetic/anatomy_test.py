"""The cached template anatomy is the built one, to the bit."""

import dataclasses

import numpy as np

from brainage_tf.synthetic.anatomy import _build_template_anatomy, load_template_anatomy


def test_the_cached_anatomy_is_the_built_one_to_the_bit(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINAGE_TF_CACHE_DIR", str(tmp_path))
    load_template_anatomy()  # builds and saves
    assert len(list(tmp_path.glob("synthetic-anatomy-*.npz"))) == 1
    cached = load_template_anatomy()
    built = _build_template_anatomy()
    assert {field.name for field in dataclasses.fields(cached)} == set(built)
    for name, array in built.items():
        value = getattr(cached, name)
        assert value.dtype == array.dtype and np.array_equal(value, array), name
