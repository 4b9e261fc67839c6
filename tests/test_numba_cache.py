"""numba's cache of compiled kernels: outside the source tree, and a foreign cache is recompiled.

A process that loaded a kernel's source under no module name (exec, some plugin loaders) once
left a cache beside the source that made every later run crash in QC.
"""

import subprocess
import sys
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "workflow" / "lib"
KERNEL = "import numba\n\n@numba.njit(cache=True)\ndef plus_one(x):\n    return x + 1.0\n"


def python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), **env},
        timeout=120,
    )


def test_a_foreign_cache_entry_is_compiled_again(tmp_path):
    (tmp_path / "kernel.py").write_text(KERNEL)
    cache = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    foreign = python(
        "g = {}; exec(compile(open('kernel.py').read(), 'kernel.py', 'exec'), g); print(g['plus_one'](1.0))",
        tmp_path,
        **cache,
    )
    assert foreign.stdout == "2.0\n"
    plain = "import sys; sys.path.insert(0, '.'); import kernel; print(kernel.plus_one(1.0))"
    assert python(plain, tmp_path, **cache).returncode != 0  # what numba alone does with that cache
    guarded = python(
        f"import sys; sys.path[:0] = ['.', {str(LIB)!r}]; import logging; "
        "logging.basicConfig(); from batched_deseq2 import numba_cache; import kernel; print(kernel.plus_one(1.0))",
        tmp_path,
        **cache,
    )
    assert guarded.stdout == "2.0\n"
    assert "WARNING:trd:numba cache of plus_one could not be loaded; compiling again" in guarded.stderr
    assert python(plain, tmp_path, **cache).stdout == "2.0\n"  # the entry was rewritten


def test_without_numba_cache_dir_the_cache_goes_to_the_users_cache(tmp_path):
    (tmp_path / "kernel.py").write_text(KERNEL)
    result = python(
        f"import sys; sys.path[:0] = ['.', {str(LIB)!r}]; from batched_deseq2 import numba_cache; import kernel; "
        "print(kernel.plus_one(1.0))",
        tmp_path,
        XDG_CACHE_HOME=str(tmp_path / "xdg"),
    )
    assert result.stdout == "2.0\n"
    assert list((tmp_path / "xdg" / "trd-de" / "numba").rglob("*.nbi"))
    assert not (tmp_path / "__pycache__").exists() or not list((tmp_path / "__pycache__").glob("*.nbi"))
