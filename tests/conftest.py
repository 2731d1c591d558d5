"""Shared fixtures: the repository's sample data and the developers' real data in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LDCT_INVREP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
SAMPLE_SERIES = REPO_ROOT / "ldct_invrep" / "sample_data" / "totalsegmentator_ct"

torch.set_num_threads(min(2, os.cpu_count() or 1))

_RUNNING: list[pytest.Item] = []  # the test being set up / run, for shared_path's marker check


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):  # noqa: ANN201
    _RUNNING.append(item)
    try:
        yield
    finally:
        _RUNNING.pop()


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data; the calling test is skipped where it is absent.

    The calling test must carry ``@pytest.mark.shared_data`` (so ``-m "not shared_data"`` selects exactly the
    tests a checkout without the data can run); a test without it fails here.
    """
    if _RUNNING and _RUNNING[-1].get_closest_marker("shared_data") is None:
        pytest.fail(f"{_RUNNING[-1].nodeid} reads ../shared/data: mark it @pytest.mark.shared_data", pytrace=False)
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


@pytest.fixture
def sample_series() -> Path:
    """The Apache-2.0 TotalSegmentator series shipped inside the package (always present)."""
    return SAMPLE_SERIES


@pytest.fixture
def mayo_pair() -> tuple[Path, Path]:
    """The real Mayo L506 full/quarter-dose pair (AAPM terms: read in place, never copied)."""
    folder = shared_path("mayo2016_mapnn_ima")
    full = next(folder.glob("L506_FD_*.IMA"))
    quarter = next(folder.glob("L506_QD_*.IMA"))
    return full, quarter
