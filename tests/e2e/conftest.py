"""Fixtures of the end-to-end tests."""

from pathlib import Path

import pytest

from ..deployment import Deployment


@pytest.fixture
def deploy(tmp_path):
    """Deployment factory; every process it started is gone when the test ends."""
    made: list[Deployment] = []

    def make(tls: dict[str, Path] | None = None) -> Deployment:
        made.append(Deployment(tmp_path, tls))
        return made[-1]

    yield make
    for deployment in made:
        deployment.close()
        assert not deployment.leftovers()
