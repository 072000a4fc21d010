"""Atomic operations on the entries of a 1-D int64 array, for compiled code shared by two threads.

Numba has no atomics of its own; these are LLVM's, emitted directly. An ordinary load inside a
spin loop may be hoisted out of it by the compiler (it cannot know another thread writes the
entry); an atomic one is read again every time, and orders the memory accesses around it:

    ====================  ===============  =====================================================
    atomic_add(a, i, v)   sequentially     ``a[i] += v``; returns the value before the addition
                          consistent       (two threads never get the same value)
    atomic_load(a, i)     acquire          ``a[i]``: what the writer stored before its release
                                           store is visible after this load
    atomic_store(a, i, v) release          ``a[i] = v``, after everything written before it
    ====================  ===============  =====================================================

Usable inside ``@numba.njit`` functions only (no bounds check: the caller's index must be valid).
"""

from __future__ import annotations

import numba
from numba import types
from numba.core import cgutils


def _entry_pointer(context, builder, array_type, array, index):
    array_struct = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, array_struct, [index])


def _check_int64_vector(array):
    if not (isinstance(array, types.Array) and array.dtype == types.int64 and array.ndim == 1):
        raise numba.core.errors.TypingError(f"atomics need a 1-D int64 array, got {array}")


@numba.extending.intrinsic
def atomic_add(typingctx, array, index, value):
    _check_int64_vector(array)

    def codegen(context, builder, signature, arguments):
        pointer = _entry_pointer(context, builder, signature.args[0], arguments[0], arguments[1])
        return builder.atomic_rmw("add", pointer, arguments[2], "seq_cst")

    return types.int64(array, types.intp, types.int64), codegen


@numba.extending.intrinsic
def atomic_load(typingctx, array, index):
    _check_int64_vector(array)

    def codegen(context, builder, signature, arguments):
        pointer = _entry_pointer(context, builder, signature.args[0], arguments[0], arguments[1])
        return builder.load_atomic(pointer, "acquire", 8)

    return types.int64(array, types.intp), codegen


@numba.extending.intrinsic
def atomic_store(typingctx, array, index, value):
    _check_int64_vector(array)

    def codegen(context, builder, signature, arguments):
        pointer = _entry_pointer(context, builder, signature.args[0], arguments[0], arguments[1])
        builder.store_atomic(arguments[2], pointer, "release", 8)
        return context.get_dummy_value()

    return types.void(array, types.intp, types.int64), codegen
