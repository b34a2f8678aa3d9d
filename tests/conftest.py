"""Fixtures of every test.

Every test gets its own fgrpo cache (fgrpo.runtime.round0): a test's stubbed evaluation must never
be served to another test or to the user's runs.

The whole-run tests join one Ray cluster for the test session, as a sweep's points do
(fgrpo.runtime.ray_cluster): a run's own cluster costs 4-5 s to start and stop, dozens of times a
session. The tests of a run's own cluster (tests/e2e/test_kill.py, tests/unit/test_runner.py,
tests/e2e/test_ray_cluster.py) and the killed-and-resumed run (tests/e2e/test_resume_killed.py) unset
RAY_ADDRESS themselves.
"""

import os

import pytest

from fgrpo.runtime.ray_cluster import ADDRESS_ENV, SharedCluster


@pytest.fixture(autouse=True)
def private_fgrpo_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FGRPO_CACHE", str(tmp_path_factory.mktemp("fgrpo-cache")))


@pytest.fixture(scope="session", autouse=True)
def session_ray_cluster(tmp_path_factory):
    """One Ray cluster for the session's runs; a cluster the caller named is used as it is."""
    if os.environ.get(ADDRESS_ENV):
        yield os.environ[ADDRESS_ENV]
        return
    with SharedCluster(tmp_path_factory.mktemp("ray") / "ray-cluster.log") as cluster:
        os.environ[ADDRESS_ENV] = cluster.address
        try:
            yield cluster.address
        finally:
            del os.environ[ADDRESS_ENV]
