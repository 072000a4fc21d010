"""The compiled kernels of the fast paths (Numba), one gate equation per line as in the reference.

Imported only by the fast paths, on their first call (:func:`..compiled.compiled_kernels`), so
``import lstmkit`` never loads Numba; compiled functions are cached on disk, keyed on every
kernel and intrinsic module's text (:mod:`.jit`), so a process compiles them at most once per
machine. Every kernel writes into arrays its caller allocated and returns nothing, unless said.

=================  ====================================================================
module             what it holds
=================  ====================================================================
:mod:`.jit`        compiler flags, the disk cache's key
:mod:`.activations`  tanh and σ (float64 exact, float32 a vectorised approximation)
:mod:`.products`   small matrix products in registers, transposing copies
:mod:`.pipeline`   the input projection chunk by chunk beside the loop; the helper's mailbox
:mod:`.lstm`       the LSTM's cell, steps and whole time loops
:mod:`.gru`        the GRU's cell, steps and whole time loops
:mod:`.two_cores`  a batch-1 loop on two cores, half of the units each
:mod:`.halves`     an LSTM on two cores, half of the batch rows each, forward and backward
:mod:`.variants`   the LSTM variants' cell and loops: peepholes, zoneout, a recurrent dropout mask,
                   layer norm
=================  ====================================================================

Why compiled: each NumPy call costs about 1 µs and each elementwise operation is a pass over
memory, so a step of a small layer was mostly interpreter overhead and a large one mostly
``tanh`` and passes. These loops fuse a step's gate nonlinearities and state update into one
pass, vectorised, and for small layers run the whole time loop, recurrent product included,
without returning to Python.
"""

from .activations import sigmoid_approx, tanh_approx
from .gru import (
    gru_cell_backward,
    gru_cell_forward,
    gru_loop_backward,
    gru_loop_forward,
    gru_step_backward,
    gru_step_forward,
)
from .halves import (
    lstm_halves_backward,
    lstm_halves_forward,
    lstm_part_backward,
    lstm_part_forward,
    lstm_second_half,
    lstm_second_half_backward,
)
from .jit import SOURCES_SHA256
from .lstm import (
    lstm_cell_backward,
    lstm_cell_forward,
    lstm_loop_backward,
    lstm_loop_forward,
    lstm_step_backward,
    lstm_step_forward,
    lstm_step_forward_on_product,
)
from .pipeline import add, announce, project_chunks, project_next_chunk, start_pipeline, store, wait_for_post
from .products import (
    aligned_transpose,
    column_sums,
    gradient_product,
    matmul_into,
    matmul_transposed_into,
    project_into,
    recurrent_product,
    transpose_into,
)
from .two_cores import (
    SYNC_DONE,
    SYNC_JOIN,
    SYNC_PROGRESS,
    gru_loop_forward_lead,
    gru_loop_forward_second,
    lstm_loop_forward_lead,
    lstm_loop_forward_second,
)
from .variants import (
    add_masked_product,
    masked_rows,
    rows_norm_backward,
    rows_norm_forward,
    variant_cell_backward,
    variant_cell_forward,
    variant_loop_backward,
    variant_loop_forward,
    variant_step_backward,
    variant_step_forward,
    weighted_column_sums,
)

__all__ = [
    "SOURCES_SHA256",
    "SYNC_DONE",
    "SYNC_JOIN",
    "SYNC_PROGRESS",
    "add",
    "add_masked_product",
    "aligned_transpose",
    "announce",
    "column_sums",
    "gradient_product",
    "gru_cell_backward",
    "gru_cell_forward",
    "gru_loop_backward",
    "gru_loop_forward",
    "gru_loop_forward_lead",
    "gru_loop_forward_second",
    "gru_step_backward",
    "gru_step_forward",
    "lstm_cell_backward",
    "lstm_cell_forward",
    "lstm_halves_backward",
    "lstm_halves_forward",
    "lstm_loop_backward",
    "lstm_loop_forward",
    "lstm_loop_forward_lead",
    "lstm_loop_forward_second",
    "lstm_part_backward",
    "lstm_part_forward",
    "lstm_second_half",
    "lstm_second_half_backward",
    "lstm_step_backward",
    "lstm_step_forward",
    "lstm_step_forward_on_product",
    "masked_rows",
    "matmul_into",
    "matmul_transposed_into",
    "project_chunks",
    "project_into",
    "project_next_chunk",
    "recurrent_product",
    "rows_norm_backward",
    "rows_norm_forward",
    "sigmoid_approx",
    "start_pipeline",
    "store",
    "tanh_approx",
    "transpose_into",
    "variant_cell_backward",
    "variant_cell_forward",
    "variant_loop_backward",
    "variant_loop_forward",
    "variant_step_backward",
    "variant_step_forward",
    "weighted_column_sums",
    "wait_for_post",
]
