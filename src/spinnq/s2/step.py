"""The chip's neuron step, written once (section 3 of docs/spinnaker2-target.md).

One step of a population, float32 state, after the integer synaptic sums I of the step:

    v = alpha*v + I + i_offset     `membrane`: two roundings (`fma`: one for alpha*v + the
                                   first term, the product exact in float64); I and i_offset
                                   added in either order (`offset_first`)
    s = v > threshold              `fire`: strict
    v = v - threshold | v_reset    `reset`, where s (by subtraction, or to v_reset)

and for `lif_curr_exp` the two synaptic currents first (`currents`):

    ie = syn_alpha*ie + I_exc + b_exc,  ii = syn_alpha*ii + I_inh + b_inh
    the membrane integrates ie + ii: the new currents (`current_first`) or the old ones.

Every implementation of the chip runs these functions: the torch engine and the pure
`lif_step` / `cuba_step` (`spinnq.s2.emulate`), the event engine's numba kernels
(`spinnq.s2.events`, compiled with `inline="always"` into its update loops) and hardware-aware
fine-tuning (`spinnq.quant.finetuning`, whose spikes carry a surrogate gradient but whose
membrane, reset and currents are these). They are plain arithmetic on whatever the caller's
numbers are -- float32 torch tensors, numpy arrays, or float32 scalars inside a numba kernel;
the three things that differ between those (widening to float64 and narrowing back for the
fused multiply-add, and the select of the reset) are bound once per library by `define`.
`tests/test_structure.py` checks that no other module of the package writes this arithmetic.

A term that is absent is not added: `integrate` is the membrane of a population without
offsets (`membrane` with i_offset = 0 differs from it only in the sign of a zero).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch


class Step(NamedTuple):
    """The step's functions, bound to one library's numbers (see `define`)."""

    integrate: Callable  # (v, a, alpha, fma) -> alpha*v + a
    membrane: Callable  # (v, i, alpha, i_offset, fma, offset_first) -> v'
    fire: Callable  # (v, threshold) -> s
    reset: Callable  # (v, s, threshold, v_reset, subtract) -> v after the reset
    neuron: Callable  # (v, i, alpha, i_offset, threshold, v_reset, subtract, fma,
    #                   offset_first) -> (s, v'): membrane, fire, reset
    currents: Callable  # (ie, ii, i_exc, i_inh, syn_alpha, b_exc, b_inh, current_first)
    #                     -> (input to the membrane, new ie, new ii)


def _as_is(f: Callable) -> Callable:
    return f


def define(wide: Callable, narrow: Callable, select: Callable,
           jit: Callable[[Callable], Callable] = _as_is) -> Step:
    """The chip step for one library: `wide(x)` float32 -> float64, `narrow(x)` back (one
    rounding), `select(c, a, b)` = a where c else b; `jit` wraps every function (numba's
    `njit(inline="always")` for the event engine, so the kernels compile them in place)."""

    @jit
    def integrate(v, a, alpha, fma):
        """alpha*v + a: two roundings, or one with `fma` (the product is exact in float64)."""
        if fma:
            return narrow(wide(alpha) * wide(v) + wide(a))
        return alpha * v + a

    @jit
    def membrane(v, i, alpha, off, fma, offset_first):
        """v' = alpha*v + I + i_offset, or alpha*v + i_offset + I (`offset_first`)."""
        a, b = (off, i) if offset_first else (i, off)
        return integrate(v, a, alpha, fma) + b

    @jit
    def fire(v, threshold):
        """Spike where v > threshold (strict)."""
        return v > threshold

    @jit
    def reset(v, s, threshold, v_reset, subtract):
        """Where s: v - threshold (`subtract`) or v_reset; elsewhere v."""
        return select(s, v - threshold if subtract else v_reset, v)

    @jit
    def neuron(v, i, alpha, off, threshold, v_reset, subtract, fma, offset_first):
        """One step of a neuron: (s, v after the reset)."""
        x = membrane(v, i, alpha, off, fma, offset_first)
        s = fire(x, threshold)
        return s, reset(x, s, threshold, v_reset, subtract)

    @jit
    def currents(ie, ii, i_exc, i_inh, syn_alpha, b_exc, b_inh, current_first):
        """lif_curr_exp's synaptic currents: (what the membrane integrates, new ie, new ii)."""
        new_e = syn_alpha * ie + i_exc + b_exc
        new_i = syn_alpha * ii + i_inh + b_inh
        return (new_e + new_i if current_first else ie + ii), new_e, new_i

    return Step(integrate, membrane, fire, reset, neuron, currents)


# torch tensors (the torch engine, `lif_step`, fine-tuning under autograd)
TORCH = define(torch.Tensor.double, torch.Tensor.float, torch.where)
