"""The worker's allocator settings take effect on glibc (the Docker image and these machines)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from tasks.memory import ALLOCATOR_DEFAULTS, limit_arenas, release_free_memory

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


def _fresh_python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_DEFAULTS}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_importing_tasks_first_sets_polars_and_pyarrow_to_give_freed_memory_back() -> None:
    out = _fresh_python(
        "import os, tasks, polars, pyarrow;"
        "print(os.environ['_RJEM_MALLOC_CONF'].endswith('dirty_decay_ms:0,muzzy_decay_ms:0'),"
        " pyarrow.default_memory_pool().backend_name)"
    )
    # polars prepends its own defaults when it loads; jemalloc takes the last value of an option.
    assert out == "True system"


def test_too_late_after_polars_and_a_users_own_setting_is_kept() -> None:
    late = _fresh_python(
        "import polars, tasks.memory as m; print(m.configure_allocators(),"
        " 'ARROW_DEFAULT_MEMORY_POOL' in __import__('os').environ)"
    )
    assert late == "False False"
    kept = _fresh_python(
        "import os; os.environ['ARROW_DEFAULT_MEMORY_POOL'] = 'jemalloc'; import tasks;"
        " print(os.environ['ARROW_DEFAULT_MEMORY_POOL'])"
    )
    assert kept == "jemalloc"


def test_the_emulator_keeps_trimming_on_a_daemon_thread() -> None:
    from infra.emulator import keep_memory_low

    thread = keep_memory_low(every_s=0.05)
    thread.join(timeout=0.3)  # a trim loop never ends by itself
    assert thread.is_alive() and thread.daemon
