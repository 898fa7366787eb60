"""Pytest configuration shared by every test directory."""


def pytest_collection_modifyitems(config, items):
    """Drops tf.test.TestCase.test_session, which TensorFlow itself marks "Not a test" and skips."""
    kept = [item for item in items if item.name != "test_session"]
    config.hook.pytest_deselected(items=[item for item in items if item.name == "test_session"])
    items[:] = kept
