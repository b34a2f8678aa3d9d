"""Every test gets its own fgrpo cache (fgrpo.runtime.round0): a test's stubbed evaluation must never
be served to another test or to the user's runs."""

import pytest


@pytest.fixture(autouse=True)
def private_fgrpo_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FGRPO_CACHE", str(tmp_path_factory.mktemp("fgrpo-cache")))
