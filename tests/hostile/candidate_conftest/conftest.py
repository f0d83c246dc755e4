import tool

tool.candidate_conftest = lambda text: len(text)
print("EVORAG-HOSTILE conftest: info ran (only the sandbox mode runs it)", flush=True)


def pytest_collection_modifyitems(config, items):
    config.hook.pytest_deselected(items=[i for i in items if "edge" in i.nodeid])
    items[:] = [i for i in items if "edge" not in i.nodeid]
