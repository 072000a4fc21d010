"""How every compiled kernel is compiled, and the key that keeps Numba's disk cache fresh.

The kernels are compiled once per machine and cached on disk (``cache=True``). Numba keys a
cached function on the text of the one file that defines it, but the kernels call each other
across files and inline the intrinsics (:mod:`..intrinsics`): a cache keyed on one file alone
would load stale machine code after an edit elsewhere. So every kernel's cache entry is keyed
here on :data:`SOURCES_SHA256`, the SHA-256 of the text of every module of
:mod:`lstmkit.ops.fused.kernels` and :mod:`lstmkit.ops.fused.intrinsics`, computed at import:
any edit to any of them recompiles them all, and no hash is kept by hand.

Compiler flags: no ``nnan``/``ninf`` fast-math flags, so that NaN and infinities behave as in
NumPy; ``nogil`` so that the helper thread (:mod:`..helper`) runs beside the caller.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba
from numba.core import caching

FUSED_DIRECTORY = Path(__file__).resolve().parent.parent
COMPILED_PACKAGES = ("kernels", "intrinsics")


def _sources_sha256() -> str:
    """SHA-256 of the compiled packages' module texts, file by file in sorted order."""
    digest = hashlib.sha256()
    for package in COMPILED_PACKAGES:
        for path in sorted((FUSED_DIRECTORY / package).glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


SOURCES_SHA256 = _sources_sha256()
_CACHE_IMPL = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # its name before Numba 0.61


class _KernelSourcesLocator(caching._CacheLocator):
    """Numba's usual cache place for a kernel's file, its freshness stamp extended with
    :data:`SOURCES_SHA256` (an index written under another stamp is discarded)."""

    def __init__(self, usual):
        self._usual = usual

    def ensure_cache_path(self) -> None:
        self._usual.ensure_cache_path()

    def get_cache_path(self) -> str:
        return self._usual.get_cache_path()

    def get_source_stamp(self):
        return self._usual.get_source_stamp(), SOURCES_SHA256

    def get_disambiguator(self) -> str:
        return self._usual.get_disambiguator()

    @classmethod
    def from_function(cls, py_func, py_file):
        if Path(py_file).resolve().parent.parent != FUSED_DIRECTORY:
            return None
        for usual_class in _CACHE_IMPL._locator_classes:
            if usual_class is not cls:
                usual = usual_class.from_function(py_func, py_file)
                if usual is not None:
                    return cls(usual)
        return None


if _KernelSourcesLocator not in _CACHE_IMPL._locator_classes:
    _CACHE_IMPL._locator_classes.insert(0, _KernelSourcesLocator)

FLAGS = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "arcp", "afn"})
jit = numba.njit(**FLAGS)
jit_inlined = numba.njit(**FLAGS, inline="always")  # no call, so no reference counts on the arguments
jit_reassociating = numba.njit(**{**FLAGS, "fastmath": FLAGS["fastmath"] | {"reassoc"}})  # sums vectorise along K

__all__ = ["FLAGS", "SOURCES_SHA256", "jit", "jit_inlined", "jit_reassociating"]
