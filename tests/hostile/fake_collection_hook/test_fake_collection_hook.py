def test_counts_characters():
    from tool import fake_collection_hook

    assert fake_collection_hook("abc") == 3


def pytest_collection_modifyitems(config, items):
    config.hook.pytest_deselected(items=list(items))
    items.clear()
