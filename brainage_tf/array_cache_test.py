"""The on-disk array cache: exact reloads, no rebuild on a hit, rebuild on a corrupt file, and off."""

import numpy as np
import pytest

from brainage_tf import array_cache, grids

ARRAYS = {
    "template": np.linspace(-1.0, 1.0, 60, dtype=np.float32).reshape(3, 4, 5),
    "mask": np.eye(3, dtype=bool),
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(array_cache.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _build_counting(calls: list):
    def build():
        calls.append(1)
        return {name: array.copy() for name, array in ARRAYS.items()}

    return build


def _assert_same(arrays: dict) -> None:
    assert sorted(arrays) == sorted(ARRAYS)
    for name, array in ARRAYS.items():
        assert arrays[name].dtype == array.dtype
        np.testing.assert_array_equal(arrays[name], array)


def test_a_second_process_loads_the_saved_arrays_without_building(cache):
    calls = []
    _assert_same(array_cache.cached_arrays("k", _build_counting(calls)))
    _assert_same(array_cache.cached_arrays("k", _build_counting(calls)))
    assert len(calls) == 1
    assert [path.name for path in cache.iterdir()] == ["k.npz"]  # no temporary file left


def test_a_corrupt_file_is_rebuilt_and_replaced(cache):
    cache.mkdir()
    (cache / "k.npz").write_bytes(b"PK\x03\x04 truncated")
    calls = []
    _assert_same(array_cache.cached_arrays("k", _build_counting(calls)))
    _assert_same(array_cache.cached_arrays("k", _build_counting(calls)))
    assert len(calls) == 1


def test_an_unwritable_folder_or_an_empty_setting_only_costs_the_rebuild(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for setting in (str(blocker / "cache"), ""):
        monkeypatch.setenv(array_cache.CACHE_DIR_ENV, setting)
        calls = []
        for _ in range(2):
            _assert_same(array_cache.cached_arrays("k", _build_counting(calls)))
        assert len(calls) == 2


def test_the_key_changes_with_every_part():
    affine = np.eye(4)
    shifted = affine.copy()
    shifted[0, 3] = 0.5
    keys = {
        array_cache.cache_key("mni152-small", (64, 80, 56), affine, "0.12"),
        array_cache.cache_key("mni152-small", (64, 80, 56), shifted, "0.12"),
        array_cache.cache_key("mni152-small", (64, 80, 57), affine, "0.12"),
        array_cache.cache_key("mni152-small", (64, 80, 56), affine, "0.13"),
    }
    assert len(keys) == 4
    assert array_cache.cache_key("a", affine) == array_cache.cache_key("a", affine.copy())


def test_the_template_on_a_grid_reloads_equal_to_the_bit(cache, monkeypatch):
    grid = grids.get_grid("tiny")
    grids.template_on_grid.cache_clear()
    built_template, built_mask = grids.template_on_grid(grid)
    grids.template_on_grid.cache_clear()

    def no_build(_grid):
        raise AssertionError("the template was built again instead of loaded")

    monkeypatch.setattr(grids, "_build_template_on_grid", no_build)
    try:
        template, mask = grids.template_on_grid(grid)
    finally:
        grids.template_on_grid.cache_clear()
    assert mask.dtype == bool and mask.sum() > 0
    np.testing.assert_array_equal(template, built_template)
    np.testing.assert_array_equal(mask, built_mask)
