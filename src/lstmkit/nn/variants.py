"""The variant options that layers and cells share: validated whenever they are set, and the ops
they need.

``zoneout`` and ``runtime_forget_bias`` (and a layer's ``return_states`` and
``recurrent_dropout``) may change after construction: each assignment is checked as the
constructor checks it, and the next call runs with it. ``layer_norm`` and ``peepholes`` define
parameters, so they are fixed at construction (assigning one is an AttributeError).
"""

from __future__ import annotations

import numpy as np

from ..ops.recurrence import Zoneout
from . import checks
from .backend_switch import BackendSwitch
from .kinds import CellOps, cell_ops, check_variant_backend


def _fixed_at_construction(name: str) -> property:
    """A read-only property over ``_{name}``, whose setter says why it is read-only."""

    def get(self):
        return getattr(self, "_" + name)

    def refuse(self, value) -> None:
        owner = type(self).__name__
        if self._kind.mode != "LSTM":
            why = f"an LSTM option ({owner} has no {checks.LSTM_ONLY[name]})"
            raise AttributeError(f"{owner}: {name} is {why}, always False here; got {name}={value!r}")
        raise AttributeError(
            f"{owner}: {name} defines parameters and is fixed at construction; build a new "
            f"{owner}(..., {name}={value!r}) instead of assigning it"
        )

    return property(get, refuse, doc=f"Whether ``{name}`` is on; fixed at construction.")


class VariantOptions(BackendSwitch):
    """Validates the variant options of a layer or cell and picks the ops that run them.

    An LSTM's layer norm, peepholes, zoneout, recurrent dropout and runtime forget_bias run the
    fused variant ops (:mod:`lstmkit.ops.fused.variants`) with "auto" or "fast", which hand the
    calls they do not support (packed input, ``proj_size``) to the reference ops themselves. The
    other variants (an LSTM's ``return_states="all"``, and a GRU's or RNN's zoneout)
    run the reference ops whatever "auto" or ``LSTMKIT_BACKEND`` say, and ``backend="fast"``
    is a ValueError naming the option. A GRU's ``recurrent_dropout`` needs the reference ops in
    training only, and its fused op hands a call with dropout masks to the reference op itself,
    so with "auto" it runs the fast ops in eval mode; ``backend="fast"`` with it is refused all
    the same. A plain layer's call pays one attribute test.
    """

    _variant: str | None = None  # the first option on that only the reference ops have, "name=value"
    _fast_lacks: str | None = None  # the first option on that the fused ops lack (a GRU's recurrent_dropout too)
    _fused_variant: bool = False  # a variant on that the fused variant ops run
    _TRAINING_ONLY = ("recurrent_dropout",)  # options the fused op hands to the reference itself
    _FUSED_VARIANTS = ("layer_norm", "peepholes", "zoneout", "runtime_forget_bias", "recurrent_dropout")  # an LSTM's

    layer_norm = _fixed_at_construction("layer_norm")
    peepholes = _fixed_at_construction("peepholes")

    @BackendSwitch.backend.setter
    def backend(self, value: str) -> None:
        check_variant_backend(type(self).__name__, value, self._fast_lacks)
        BackendSwitch.backend.fset(self, value)

    @property
    def zoneout(self) -> float | tuple[float, float]:
        """Zoneout's rate (a pair (z_h, z_c) if given as one); settable, checked when set."""
        return self._zoneout

    @zoneout.setter
    def zoneout(self, value) -> None:
        rates = checks.check_zoneout(type(self).__name__, value, self._kind.state_parts)  # one per state part
        self._assign(_zoneout=tuple(rates) if isinstance(value, (tuple, list)) else rates[0], _zoneout_rates=rates)

    @property
    def runtime_forget_bias(self) -> float:
        """TF1's forget_bias β, added to f's pre-activation at every call; settable, checked when set."""
        return self._runtime_forget_bias

    @runtime_forget_bias.setter
    def runtime_forget_bias(self, value) -> None:
        owner = type(self).__name__
        if self._kind.mode != "LSTM":
            checks.check_lstm_only(owner, runtime_forget_bias=value)
        self._assign(_runtime_forget_bias=checks.check_real(owner, "runtime_forget_bias", value))

    def _set_variants(
        self, backend: str, zoneout, layer_norm=False, peepholes=False, runtime_forget_bias=0.0, **lstm_only
    ) -> None:
        """Check and keep the variant options (see the layers' and cells' docstrings), then set
        ``backend``, checked against them. Another kind than an LSTM refuses the LSTM's options
        (``lstm_only``: more of them, e.g. a layer's ``forget_bias``) unless they are off."""
        owner = type(self).__name__
        if self._kind.mode != "LSTM":
            checks.check_lstm_only(
                owner, layer_norm=layer_norm, peepholes=peepholes, runtime_forget_bias=runtime_forget_bias,
                **lstm_only,
            )  # fmt: skip
        self._layer_norm = checks.check_flag(owner, "layer_norm", layer_norm)
        self._peepholes = checks.check_flag(owner, "peepholes", peepholes)
        self._runtime_forget_bias = 0.0
        self._zoneout_rates = (0.0,) * len(self._kind.state_parts)
        self.runtime_forget_bias = runtime_forget_bias
        self.zoneout = zoneout
        self.backend = backend

    def _options_on(self) -> dict[str, bool]:
        """Each variant option -> whether it is on, in the order errors name them."""
        return dict(
            layer_norm=self._layer_norm, peepholes=self._peepholes, zoneout=any(self._zoneout_rates),
            runtime_forget_bias=bool(self._runtime_forget_bias),
        )  # fmt: skip

    def _variants_on(self) -> dict:
        """The variant options on, name -> value (as set), in :meth:`_options_on`'s order."""
        return {name: getattr(self, name) for name, on in self._options_on().items() if on}

    def _assign(self, **fields) -> None:
        """Set private fields of the options and derive what the calls use from them: undone,
        and the ValueError raised, where the backend asked for ("fast") lacks the result."""
        previous = {name: self.__dict__.get(name) for name in fields}
        self.__dict__.update(fields)
        try:
            self._derive(self.__dict__.get("_backend"))
        except ValueError:
            self.__dict__.update(previous)
            raise

    def _derive(self, backend: str | None) -> None:
        """``_variant``, ``_fast_lacks``, ``_fused_variant``, ``_zoned`` and ``_op_options`` from the options, checked
        against ``backend`` (None: not yet set)."""
        on = self._variants_on()
        fused = self._FUSED_VARIANTS if self._kind.mode == "LSTM" else ()
        fast_lacks = [f"{name}={value!r}" for name, value in on.items() if name not in fused]
        reference_only = [
            f"{name}={value!r}" for name, value in on.items() if name not in fused and name not in self._TRAINING_ONLY
        ]
        if backend is not None:
            check_variant_backend(type(self).__name__, backend, fast_lacks[0] if fast_lacks else None)
        self._fast_lacks = fast_lacks[0] if fast_lacks else None
        self._variant = reference_only[0] if reference_only else None
        self._fused_variant = any(name in fused for name in on)
        self._zoned = any(self._zoneout_rates)
        self._op_options = {"forget_bias": self._runtime_forget_bias} if self._runtime_forget_bias else {}

    def _ops(self) -> CellOps:
        if self._variant is not None:
            return cell_ops(self._kind, "reference")
        return cell_ops(self._kind, self._backend, self._fused_variant)

    def _zoneout_masks(self, shape: tuple[int, ...], sizes: tuple[int, ...]) -> Zoneout:
        """Zoneout (Krueger et al. 2017) of one call over ``shape`` ((T, N) for a layer-direction,
        (1, N) for a cell's step), ``sizes`` one per state part: in training 0/1 keep masks
        (*shape, size) per part, 1 (keep the previous value) with probability z, drawn from the
        module's generator, fresh at every step; in evaluation the rate z itself, the masks'
        expectation. None for a part whose z is 0."""
        rates, dtype = self._zoneout_rates, self.dtype
        if not self.training:
            return Zoneout(*(np.asarray(rate, dtype) if rate else None for rate in rates))
        return Zoneout(
            *(
                (self._rng.random((*shape, size)) < rate).astype(dtype) if rate else None
                for rate, size in zip(rates, sizes)
            )
        )
