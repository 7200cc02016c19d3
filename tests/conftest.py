"""Fixtures of the crossmargin test suite (and its hypothesis profile).

Helpers that build books and results from rows are in ``helpers.py``; the hypothesis
strategies (universes, books, price overrides, cascades) and the result assertions are the
public :mod:`crossmargin.testing`.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crossmargin as cm
import pytest
from helpers import make_small_universe
from hypothesis import HealthCheck, settings

settings.register_profile(
    "crossmargin",
    deadline=None,
    max_examples=60,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("crossmargin")


@pytest.fixture(scope="session")
def small() -> cm.Universe:
    """The hand-written universe of ``helpers.py``."""
    return make_small_universe()


@pytest.fixture(scope="session")
def demo() -> cm.Universe:
    return cm.Universe.demo()


@pytest.fixture(scope="session")
def small_engine(small: cm.Universe) -> cm.Engine:
    return cm.Engine(small, threads=1)


@pytest.fixture(scope="session")
def script() -> str:
    """The installed `crossmargin` console script (a subprocess is what a scheduler runs)."""
    path = shutil.which("crossmargin") or shutil.which(
        "crossmargin", path=str(Path(sys.executable).parent)
    )
    assert path, "the crossmargin console script is not installed (pip install -e .)"
    return path


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A local Dask cluster of two single-threaded worker processes (the distributed tests)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c
