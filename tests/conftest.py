"""Shared fixtures.

Real datasets are found through one fixture, ``shared_data``: the folder named
by ``RLHF_DIAG_DATA`` if set, else ``../shared/data`` beside the repository.
Outside CI a missing folder skips the tests that need it; in CI (``CI`` set)
it is an error, so a real-data test can never pass by not running.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _data_root() -> Path:
    env = os.environ.get("RLHF_DIAG_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = _data_root()
    if not (root / "MANIFEST.md").is_file():
        msg = f"real datasets not found at {root} (set RLHF_DIAG_DATA)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return root
