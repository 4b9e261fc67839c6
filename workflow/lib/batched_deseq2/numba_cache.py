"""Numba's on-disk cache of compiled kernels: outside the source tree, and never fatal.

Import this module before numba compiles anything (workflow/lib/batched_deseq2/inference.py imports it first).

* Where: ``NUMBA_CACHE_DIR`` when set (the workflow sets ``.snakemake/numba_cache`` in its
  working directory, workflow/rules/common.smk), else the user's cache
  (``$XDG_CACHE_HOME`` or ``~/.cache``, then ``trd-de/numba``). Numba's default, a
  ``__pycache__`` beside the source, fails on a read-only install and is shared by every
  process that loads the file, whatever it calls the module.
* A cache entry that cannot be loaded (written by another numba, or by a process that
  loaded the source under another module name, which made every later run crash) is a
  cache miss: the kernel is compiled again and the entry rewritten. A cache that cannot be
  written costs the compilation time of the next run, nothing else.
"""

import functools
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("trd")


def default_cache_dir() -> Path:
    """The user's cache folder for this pipeline's compiled kernels."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "trd-de" / "numba"


def use_cache_dir() -> str:
    """Set NUMBA_CACHE_DIR (unless set already) and tell a numba that is loaded already."""
    path = os.environ.setdefault("NUMBA_CACHE_DIR", str(default_cache_dir()))
    if "numba" in sys.modules:  # numba reads the variable when it is imported
        sys.modules["numba"].config.CACHE_DIR = path
    return path


def _never_fatal(method, fallback_doing: str):
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as err:  # noqa: BLE001 - pickles of a foreign cache raise anything
            name = getattr(getattr(self, "_py_func", None), "__qualname__", self._name)
            log.warning("numba cache of %s %s (%s: %s)", name, fallback_doing, type(err).__name__, err)
            return None

    return guarded


def make_cache_errors_harmless() -> None:
    """Unloadable entries are recompiled and unwritable ones skipped, with a warning."""
    from numba.core import caching

    if getattr(caching.Cache.load_overload, "_trd_guarded", False):
        return
    caching.Cache.load_overload = _never_fatal(
        caching.Cache.load_overload, "could not be loaded; compiling again"
    )
    caching.Cache.save_overload = _never_fatal(caching.Cache.save_overload, "could not be written")
    caching.Cache.load_overload._trd_guarded = True


use_cache_dir()
make_cache_errors_harmless()
