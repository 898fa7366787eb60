"""Pytest configuration shared by every test directory."""


def pytest_collection_modifyitems(config, items):
    """Drops tf.test.TestCase.test_session, which TensorFlow itself marks "Not a test" and skips."""
    kept = [item for item in items if item.name != "test_session"]
    config.hook.pytest_deselected(items=[item for item in items if item.name == "test_session"])
    items[:] = kept


def pytest_configure(config):
    """Gives the run its own array cache (brainage_tf.array_cache), so tests never read a stale user cache."""
    import os
    import tempfile

    from brainage_tf.array_cache import CACHE_DIR_ENV

    os.environ[CACHE_DIR_ENV] = tempfile.mkdtemp(prefix="brainage_tf-test-cache-")
