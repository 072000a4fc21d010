"""What Keras' LSTM, GRU and SimpleRNN share: Keras' options and call, on lstmkit's ops.

Each call converts the Keras weights to the ops' PyTorch layout (:mod:`._formats`), runs the
shared time loop batch-major in, time-major inside, and converts the weight gradients back; a
mask becomes the loop's (T, N) running mask (:mod:`.masking`). Nothing here restates a cell's
equations.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ..grad_mode import is_grad_enabled
from ..nn import checks
from ..nn.backend_switch import BackendSwitch
from ..nn.kinds import CellKind, CellOps, cell_ops, check_variant_backend
from ..nn.masks import inverted_dropout_mask
from ..nn.module import Module
from ..ops.recurrence import GateDropout
from . import initializers
from .masking import check_mask, last_real_step, repeat_last_output, repeat_last_output_backward


class _Saved(NamedTuple):
    """What one call keeps for its backward."""

    cache: object  # the op's cache
    source: np.ndarray | None  # (T, N) step each output repeats (masked steps), None: no repeat
    given_state: bool  # whether the call had an initial_state (then backward returns its gradient)
    ops: CellOps  # the ops that made the cache, which its backward must be


def _check_choice(owner: str, name: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(
            f"{owner}: {name} must be one of {', '.join(map(repr, allowed))} (the equations lstmkit's ops "
            f"implement), got {value!r}"
        )


class KerasRNN(BackendSwitch, Module):
    """A Keras recurrent layer (``keras.layers.RNN`` semantics) over one cell kind of lstmkit's ops.

    Inputs of ``layer(inputs, initial_state=None, mask=None, training=None)`` (U = units):

        ==============  =========  ===============================================================
        inputs          (N, T, F)  batch-major; F fixes the input size at the first call (build)
        initial_state   (N, U)     list of state arrays ([h, c] for LSTM, [h] or h otherwise);
                                   zeros if omitted (or the kept states when stateful)
        mask            (N, T)     booleans, True where a step is real; any pattern
        training        bool       dropout on; None: the module's mode (``train()`` / ``eval()``;
                                   a new layer is in eval mode, as Keras' eager calls)
        ==============  =========  ===============================================================

    Returns ``output`` or, with ``return_state``, ``[output, *states]``: output (N, T, U) with
    ``return_sequences`` (in processing order: reversed with ``go_backwards``, as Keras) else
    (N, U); each state (N, U). ``backward(grad)`` takes a gradient structured like that return
    (None parts are zeros) and returns the input's gradient (N, T, F), or ``(dinputs, dstates)``
    when the call had an ``initial_state``; weight gradients accumulate in ``.grad``.
    ``backend`` ("auto", "reference" or "fast", keyword-only) picks the implementation of the
    equations (:class:`~lstmkit.nn.backend_switch.BackendSwitch`). ``fast_lacks`` (a subclass's,
    e.g. "reset_after=False"): an option on that the fused ops lack, so the layer runs the
    reference ops whatever "auto" or ``LSTMKIT_BACKEND`` say, and ``backend="fast"`` is refused.
    """

    def __init__(
        self,
        keras_format,
        kind: CellKind,
        units: int,
        *,
        use_bias: bool,
        dropout: float,
        recurrent_dropout: float,
        return_sequences: bool,
        return_state: bool,
        go_backwards: bool,
        stateful: bool,
        seed: int | None,
        dtype,
        forget_bias_block: int | None = None,
        backend: str = "auto",
        fast_lacks: str | None = None,
    ):
        super().__init__()
        owner = type(self).__name__
        self._format, self._kind, self._fast_lacks = keras_format, kind, fast_lacks
        self.backend = backend
        self.units = checks.check_size(owner, "units", units)
        self.use_bias = checks.check_flag(owner, "use_bias", use_bias)
        self.dropout = checks.check_probability(owner, "dropout", dropout)
        self.recurrent_dropout = checks.check_probability(owner, "recurrent_dropout", recurrent_dropout)
        for name, value in (
            ("return_sequences", return_sequences),
            ("return_state", return_state),
            ("go_backwards", go_backwards),
            ("stateful", stateful),
        ):
            setattr(self, name, checks.check_flag(owner, name, value))
        self.dtype = checks.check_dtype(owner, dtype)
        self.zero_output_for_mask = False
        self.input_size: int | None = None
        self.states: list[np.ndarray] | None = None
        self._forget_bias_block = forget_bias_block
        self._rng = np.random.default_rng(seed)
        self.training = False

    @BackendSwitch.backend.setter
    def backend(self, value: str) -> None:
        check_variant_backend(type(self).__name__, value, self._fast_lacks)
        BackendSwitch.backend.fset(self, value)

    def _ops(self) -> CellOps:
        return cell_ops(self._kind, "reference" if self._fast_lacks else self._backend)

    # ---- weights -----------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.input_size is not None

    def build(self, input_shape) -> None:
        """Create ``kernel``, ``recurrent_kernel`` (and ``bias``) for inputs of shape (..., F) with
        Keras' initialisers (glorot_uniform, orthogonal, zeros / unit forget bias)."""
        owner = type(self).__name__
        self.input_size = checks.check_size(owner, "input size", int(input_shape[-1]))
        shapes = self._format.weight_shapes(self.input_size, self.units, self.use_bias)
        draws = {"kernel": initializers.glorot_uniform, "recurrent_kernel": initializers.orthogonal}
        for name, shape in shapes.items():
            if name in draws:
                value = draws[name](self._rng, shape)
            else:
                value = initializers.keras_bias(shape, self._forget_bias_block)
            self.register_parameter(name, value.astype(self.dtype))

    def get_weights(self) -> list[np.ndarray]:
        """Copies of ``[kernel, recurrent_kernel(, bias)]``, Keras' order and shapes."""
        return [parameter.data.copy() for parameter in self._parameters.values()]

    def set_weights(self, weights) -> None:
        """Load ``[kernel, recurrent_kernel(, bias)]``; an unbuilt layer builds from the kernel's shape."""
        owner = type(self).__name__
        weights = list(weights)
        if not self.built and weights:
            self.build(np.shape(weights[0])[:1])
        expected = self._format.weight_shapes(self.input_size, self.units, self.use_bias)
        if len(weights) != len(expected):
            raise ValueError(
                f"{owner}.set_weights: expected {len(expected)} arrays ({', '.join(expected)}), got {len(weights)}"
            )
        arrays = [checks.as_float_array(owner, name, value, self.dtype) for name, value in zip(expected, weights)]
        for (name, shape), array in zip(expected.items(), arrays):
            checks.check_shape(owner, f"set_weights: {name}", array, shape)
        for name, array in zip(expected, arrays):
            self._parameters[name].assign(array)

    def count_params(self) -> int:
        return sum(parameter.data.size for parameter in self._parameters.values())

    def _op_weights(self):
        arrays = [parameter.data for parameter in self._parameters.values()]
        return self._format.torch_weights(self._kind, *arrays)

    # ---- call ----------------------------------------------------------------------------
    def _state_count(self) -> int:
        return len(self._kind.state_parts)

    def _check_inputs(self, inputs) -> np.ndarray:
        owner = type(self).__name__
        x = checks.as_float_array(owner, "inputs", inputs, self.dtype)
        if x.ndim != 3 or 0 in x.shape:
            raise ValueError(f"{owner}: expected inputs of shape (N, T, F) with every size >= 1, got shape {x.shape}")
        if not self.built:
            self.build(x.shape)
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{owner}: inputs.shape[-1] must equal the input size {self.input_size} "
                f"(fixed by the first call), got {x.shape[-1]}"
            )
        return x

    def _check_states(self, name: str, states, batch: int) -> tuple[np.ndarray, ...]:
        """A list of (N, U) arrays (a single array for a one-part state), or a clear error."""
        owner, count = type(self).__name__, self._state_count()
        if isinstance(states, np.ndarray) and count == 1:
            states = [states]
        if not isinstance(states, (list, tuple)) or len(states) != count:
            given = f"{len(states)} arrays" if isinstance(states, (list, tuple)) else type(states).__name__
            raise ValueError(
                f"{owner}: {name} must be a list of {count} arrays of shape ({batch}, {self.units}), got {given}"
            )
        arrays = tuple(
            np.zeros((batch, self.units), self.dtype)
            if s is None
            else checks.as_float_array(owner, name, s, self.dtype)
            for s in states
        )
        for array in arrays:
            checks.check_shape(owner, name, array, (batch, self.units))
        return arrays

    def _initial_state(self, initial_state, batch: int) -> tuple[np.ndarray, ...]:
        if initial_state is not None:
            return self._check_states("initial_state", initial_state, batch)
        if not self.stateful:
            return tuple(np.zeros((batch, self.units), self.dtype) for _ in range(self._state_count()))
        if self.states is None:
            self.states = [np.zeros((batch, self.units), self.dtype) for _ in range(self._state_count())]
        if self.states[0].shape[0] != batch:
            raise ValueError(
                f"{type(self).__name__}: a stateful layer keeps states for batch size "
                f"{self.states[0].shape[0]}, got inputs with batch size {batch}"
            )
        return tuple(self.states)

    def reset_states(self) -> None:
        """Zero the states a stateful layer carries from call to call (the batch size stays, as in Keras)."""
        if self.states is not None:
            self.states = [np.zeros_like(state) for state in self.states]

    reset_state = reset_states

    # Keras' LSTM and GRU cells drop only for 0 < rate < 1; its SimpleRNN cell applies any mask it
    # draws, and a rate of 1 draws zeros.
    drops_all_at_rate_one = False

    def _masks(self, rate: float, count: int, batch: int, size: int) -> np.ndarray | None:
        """``count`` masks (count, N, size) of 0 or 1/(1 - rate), or None where Keras drops nothing."""
        if rate == 1.0 and self.drops_all_at_rate_one:
            return np.zeros((count, batch, size), self.dtype)
        if not 0.0 < rate < 1.0:
            return None
        return inverted_dropout_mask(self._rng, (count, batch, size), rate, self.dtype)

    def _gate_dropout(self, training: bool, batch: int, features: int) -> GateDropout | None:
        """The masks of one call in training, fixed over its steps (Keras' DropoutRNNCell).

        Keras drops the input with one mask shared by the gates, except that a layer with
        ``recurrent_dropout`` switches to its per-gate cell (``implementation=1``): one input
        mask and one recurrent mask per gate block (4 for LSTM, 3 for GRU, 1 for SimpleRNN).
        Masks follow PyTorch's block order, as the ops' weights do.
        """
        if not training:
            return None
        gates = self._kind.gate_count
        input_count = gates if self.recurrent_dropout != 0.0 else 1
        dropout = GateDropout(
            self._masks(self.dropout, input_count, batch, features),
            self._masks(self.recurrent_dropout, gates, batch, self.units),
        )
        return None if dropout.input is None and dropout.recurrent is None else dropout

    def forward(
        self,
        inputs: ArrayLike,
        initial_state: ArrayLike | list | None = None,
        mask: ArrayLike | None = None,
        training: bool | None = None,
    ) -> np.ndarray | list[np.ndarray]:
        """Run the layer (see the class docstring)."""
        x = self._check_inputs(inputs)
        batch, steps, features = x.shape
        mask = check_mask(type(self).__name__, mask, (batch, steps))
        state0 = self._initial_state(initial_state, batch)
        dropout = self._gate_dropout(self.training if training is None else bool(training), batch, features)
        order = slice(None, None, -1) if self.go_backwards else slice(None)
        x_time_major = np.ascontiguousarray(x.transpose(1, 0, 2)[order])
        running = None if mask is None else np.ascontiguousarray(mask.T[order])
        ops = self._ops()
        output, states, cache = ops.forward(
            x_time_major, state0, self._op_weights(), is_grad_enabled(), running, dropout
        )
        source = None if running is None or self.zero_output_for_mask else last_real_step(running)
        if source is not None:
            output = repeat_last_output(output, source)
        if self.stateful:
            self.states = [state.copy() for state in states]
        if cache is not None:
            self._save_for_backward(_Saved(cache, source, initial_state is not None, ops))
        result = output.transpose(1, 0, 2) if self.return_sequences else output[-1]
        return [result, *states] if self.return_state else result

    def backward(self, grad: ArrayLike | list) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
        """Gradient of the inputs (and of initial_state, if given) for the latest unmatched call."""
        owner = type(self).__name__
        saved = self._pop_saved()
        steps, batch = saved.cache.x.shape[:2]
        if self.return_state:
            if not isinstance(grad, (list, tuple)) or len(grad) != 1 + self._state_count():
                raise ValueError(
                    f"{owner}.backward: expected a list [doutput, "
                    f"{', '.join('d' + p for p in self._kind.state_parts)}] "
                    f"like the call's return, got {type(grad).__name__}"
                )
            doutput, dstates = grad[0], self._check_states("dstates", list(grad[1:]), batch)
        else:
            doutput, dstates = grad, self._check_states("dstates", [None] * self._state_count(), batch)
        dsequence = np.zeros((steps, batch, self.units), self.dtype)
        if doutput is not None:
            expected = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
            doutput = checks.as_float_array(owner, "doutput", doutput, self.dtype)
            checks.check_shape(owner, "doutput", doutput, expected)
            if self.return_sequences:
                dsequence[...] = doutput.transpose(1, 0, 2)
            else:
                dsequence[-1] = doutput
        if saved.source is not None:
            dsequence = repeat_last_output_backward(dsequence, saved.source)
        dx, dstate0, dweights = saved.ops.backward(dsequence, dstates, saved.cache)
        for parameter, gradient in zip(self._parameters.values(), self._format.keras_gradients(dweights)):
            parameter.accumulate(gradient)
        dinputs = dx[::-1].transpose(1, 0, 2) if self.go_backwards else dx.transpose(1, 0, 2)
        dinputs = np.ascontiguousarray(dinputs)
        return (dinputs, list(dstate0)) if saved.given_state else dinputs

    def fresh_copy(self, **changes) -> KerasRNN:
        """A new, unbuilt layer of the same configuration (``changes`` overriding attributes, e.g.
        go_backwards): what Keras' Bidirectional makes of the layer it wraps. Its seed is drawn from
        this layer's generator, so the copies start from different weights."""
        clone = copy.copy(self)
        Module.__init__(clone)
        clone.training, clone.input_size, clone.states = self.training, None, None
        clone._rng = np.random.default_rng(int(self._rng.integers(2**63)))
        for name, value in changes.items():
            setattr(clone, name, value)
        return clone

    # ---- description ---------------------------------------------------------------------
    def output_shapes(self, batch, steps) -> list[tuple]:
        """Shapes of the call's return: ``[output]`` or ``[output, *states]`` (None for unknown sizes)."""
        output = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        return [output] + ([(batch, self.units)] * self._state_count() if self.return_state else [])

    def compute_mask(self, inputs: ArrayLike, mask: ArrayLike | None = None) -> ArrayLike | None:
        """The mask the next layer sees (Keras): the input's when returning sequences, else None."""
        return mask if self.return_sequences else None

    def _config_repr(self) -> list[str]:
        flags = ("return_sequences", "return_state", "go_backwards", "stateful")
        parts = [f"{self.units}"] + [f"{flag}=True" for flag in flags if getattr(self, flag)]
        if not self.use_bias:
            parts.append("use_bias=False")
        return parts

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._config_repr())})"
