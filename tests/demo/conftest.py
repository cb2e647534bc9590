"""Demo fixtures: the workers' speed is put back after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demo import workers


@pytest.fixture(autouse=True)
def _restore_speed() -> Iterator[None]:
    """Tests change the process-wide demo speed; each one starts and ends at the same speed."""
    before = workers.get_speed()
    yield
    workers.set_speed(before)
