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
membrane, reset and currents are these). They are written once, in a library's primitive
operations (`Ops`: multiply, add, compare, select, subtract-where), bound by `define`: Python's
operators for numpy arrays and numba's float32 scalars, torch's functions for tensors. Each
function takes an optional `out`, where a library can write its result (torch: a tensor the
caller owns, such as the state itself, so the torch engine's scans allocate no tensor per
step); without one it returns a new value. `tests/s2/test_step.py` checks that no other
module of the package writes this arithmetic.

The reset takes the spikes as `fire` gives them: bool (a select), or, from a `fire` into a
float tensor, 0/1 floats (torch only: a multiply-add, several times cheaper than a bool select
on a CPU). The two give the same floats where the selected operands are finite, up to the
sign of a zero (which no comparison, spike or non-zero value depends on); an infinite operand
makes a NaN, which then stays in v (alpha*NaN + I is NaN, NaN > th is false): the torch
engine's scan looks for one at the end of a block and runs the block again with bool spikes.

A term that is absent is not added: `integrate` is the membrane of a population without
offsets (`membrane` with i_offset = 0 differs from it only in the sign of a zero); a decay of
1 is not multiplied (alpha None: 1*v is v, exactly).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch


class Step(NamedTuple):
    """The step's functions, bound to one library's numbers (see `define`). `out`: where
    the result goes (None: a new value); `currents`' is (input, ie, ii)."""

    integrate: Callable  # (v, a, alpha, fma, out=None) -> alpha*v + a
    membrane: Callable  # (v, i, alpha, i_offset, fma, offset_first, out=None) -> v'
    fire: Callable  # (v, threshold, out=None) -> s
    reset: Callable  # (v, s, threshold, v_reset, subtract, out=None) -> v after the reset
    neuron: Callable  # (v, i, alpha, i_offset, threshold, v_reset, subtract, fma,
    #                   offset_first, out=None, s_out=None) -> (s, v'): membrane, fire, reset
    currents: Callable  # (ie, ii, i_exc, i_inh, syn_alpha, b_exc, b_inh, current_first,
    #                     out=None) -> (input to the membrane, new ie, new ii)


class Ops(NamedTuple):
    """A library's primitive operations, each taking `out=`: the result written into it
    where the library can and it is not None, else a new value."""

    mul: Callable  # (a, b, out=) -> a*b
    add: Callable  # (a, b, out=) -> a + b
    gt: Callable  # (a, b, out=) -> a > b
    select: Callable  # (c, a, b, out=) -> a where c else b
    sub_where: Callable  # (v, c, a, out=) -> v - a where c else v
    put: Callable  # (x, out=) -> x, in out


def _as_is(f: Callable) -> Callable:
    return f


def operators(select: Callable, jit: Callable[[Callable], Callable] = _as_is) -> Ops:
    """`Ops` of Python's operators, always a new value (`out` ignored): numpy arrays and
    numba's scalars; `select(c, a, b)` the library's select."""

    @jit
    def mul(a, b, out=None):
        return a * b

    @jit
    def add(a, b, out=None):
        return a + b

    @jit
    def gt(a, b, out=None):
        return a > b

    @jit
    def sel(c, a, b, out=None):
        return select(c, a, b)

    @jit
    def sub_where(v, c, a, out=None):
        return select(c, v - a, v)

    @jit
    def put(x, out=None):
        return x

    return Ops(mul, add, gt, sel, sub_where, put)


def define(wide: Callable, narrow: Callable, select: Callable,
           jit: Callable[[Callable], Callable] = _as_is, ops: Ops | None = None) -> Step:
    """The chip step for one library: `wide(x)` float32 -> float64, `narrow(x)` back (one
    rounding), `select(c, a, b)` = a where c else b, `ops` its primitive operations (default:
    `operators`); `jit` wraps every function (numba's `njit(inline="always")` for the event
    engine, so the kernels compile them in place)."""
    mul, add, gt, sel, sub_where, put = ops or operators(select, jit)

    @jit
    def integrate(v, a, alpha, fma, out=None):
        """alpha*v + a: two roundings, or one with `fma` (the product is exact in float64).
        alpha None: no decay (a decay of 1, not multiplied: 1*v is v)."""
        if fma:
            x = wide(v) if alpha is None else mul(wide(alpha), wide(v))
            return put(narrow(add(x, wide(a))), out=out)
        return add(v if alpha is None else mul(alpha, v, out=out), a, out=out)

    @jit
    def membrane(v, i, alpha, off, fma, offset_first, out=None):
        """v' = alpha*v + I + i_offset, or alpha*v + i_offset + I (`offset_first`)."""
        a, b = (off, i) if offset_first else (i, off)
        return add(integrate(v, a, alpha, fma, out), b, out=out)

    @jit
    def fire(v, threshold, out=None):
        """Spike where v > threshold (strict)."""
        return gt(v, threshold, out=out)

    @jit
    def reset(v, s, threshold, v_reset, subtract, out=None):
        """Where s: v - threshold (`subtract`) or v_reset; elsewhere v."""
        if subtract:
            return sub_where(v, s, threshold, out=out)
        return sel(s, v_reset, v, out=out)

    @jit
    def neuron(v, i, alpha, off, threshold, v_reset, subtract, fma, offset_first, out=None,
               s_out=None):
        """One step of a neuron: (s, v after the reset); v written into `out`, s `s_out`."""
        x = membrane(v, i, alpha, off, fma, offset_first, out)
        s = fire(x, threshold, s_out)
        return s, reset(x, s, threshold, v_reset, subtract, out)

    @jit
    def currents(ie, ii, i_exc, i_inh, syn_alpha, b_exc, b_inh, current_first, out=None):
        """lif_curr_exp's synaptic currents: (what the membrane integrates, new ie, new ii);
        `out` (input, ie, ii) may be the state itself (the old sum is taken first)."""
        oc, oe, oi = (None, None, None) if out is None else out
        old = None if current_first else add(ie, ii, out=oc)
        new_e = add(add(mul(syn_alpha, ie, out=oe), i_exc, out=oe), b_exc, out=oe)
        new_i = add(add(mul(syn_alpha, ii, out=oi), i_inh, out=oi), b_inh, out=oi)
        return (add(new_e, new_i, out=oc) if current_first else old), new_e, new_i

    return Step(integrate, membrane, fire, reset, neuron, currents)


# ------------------------------------------------------------------------------ torch
def _t_put(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    return x if out is None else out.copy_(x)


def _t_select(c, a, b, out: torch.Tensor | None = None) -> torch.Tensor:
    """a where c else b. c bool: `torch.where`. c 0/1 floats (a `fire` into a float tensor):
    b - c*b + c*a, the term of a Python-number a = 0 left out: the same floats where a and b
    are finite, up to the sign of a zero (see the module docstring)."""
    if c.dtype == torch.bool:
        return _t_put(torch.where(c, a, b), out)
    r = torch.addcmul(b, c, b, value=-1, out=out)
    if isinstance(a, torch.Tensor):
        return r.addcmul_(c, a)
    return r if a == 0 else r.add_(c, alpha=a)


def _t_sub_where(v: torch.Tensor, c: torch.Tensor, a: torch.Tensor,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """v - a where c else v. c bool: a select. c 0/1 floats: v - c*a in one `addcmul`
    (v + (-c)*a: v - a where c = 1, v + (-0)*a = v where c = 0 for a finite)."""
    if c.dtype == torch.bool:
        return _t_put(torch.where(c, v - a, v), out)
    return torch.addcmul(v, c, a, value=-1, out=out)


# torch tensors (the torch engine, `lif_step`, fine-tuning under autograd)
TORCH = define(torch.Tensor.double, torch.Tensor.float, torch.where,
               ops=Ops(torch.mul, torch.add, torch.gt, _t_select, _t_sub_where, _t_put))
