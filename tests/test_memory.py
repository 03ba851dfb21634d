"""The worker's allocator settings take effect on glibc (the Docker image and these machines)."""

from __future__ import annotations

import platform

import pytest

from tasks.memory import limit_arenas, release_free_memory

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt and malloc_trim are glibc's")
def test_arenas_are_capped_and_free_pages_returned_on_glibc() -> None:
    assert limit_arenas() is True
    garbage = [bytes(4096) for _ in range(20_000)]  # ~80 MB of small blocks, then freed
    del garbage
    assert release_free_memory() is True


@pytest.mark.skipif(GLIBC, reason="elsewhere both are no-ops")
def test_both_are_no_ops_off_glibc() -> None:
    assert limit_arenas() is False and release_free_memory() is False
