def test_site_hook_ran():
    assert EVORAG_HOSTILE_SITE == "ran"  # noqa: F821 - defined only if a site hook ran
