"""Suite-wide hygiene: offscreen Qt, hypothesis profiles, no leaked threads."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# CI machines are small and shared: no per-example deadline, the example counts stay as written.
settings.register_profile(
    "custos", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("custos")


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """A test must join every thread it started (executors included)."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and not t.daemon and not t.name.startswith("asyncio_")
    ]
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked threads: {still}"
