"""Brevitas adapter of the quant stage (the gesture task's seed-faithful QAT path).

QAT: the Q-SNN of the seed paper -- the same network with Brevitas `QuantConv2d` /
`QuantLinear` (8-bit signed weights, narrow range [-127, 127], one float scale per layer =
max|w| / 127, round half to even), fine-tuned from the P-SNN.

Deployment uses Brevitas's integers as they are: the NIR weight node holds `int * scale` (the
value the Q-SNN computed with) and `metadata["w_scale"] = 1 / scale`; the compiler runs with
`graph_scales=True` (PTQ scaling off) and round-to-nearest for every projection, so
`round(w * w_scale)` gives back exactly Brevitas's integer (`check_integers` proves it after
every export). Thresholds are scaled by the same `w_scale` on the chip.

Brevitas is optional (`spinnq[qat]`); without it QAT falls back to spinnq's own chip-exact
fake-quant layers (`spinnq.nn.QuantConv2d/QuantLinear`), and the report says which was used.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable

import nir
import numpy as np
import torch
from torch import nn

from spinnq.errors import InputError
from spinnq.graph.model import Graph
from spinnq.nn import QuantConv2d, QuantLinear, to_nir


def brevitas_available() -> bool:
    try:
        import brevitas.nn  # noqa: F401
    except ImportError:
        return False
    return True


def brevitas_layers(bits: int = 8) -> tuple[Callable, Callable]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import brevitas.nn as qnn
    return (lambda i, o, k, **kw: qnn.QuantConv2d(i, o, k, bias=False, weight_bit_width=bits,
                                                  **kw),
            lambda i, o: qnn.QuantLinear(i, o, bias=False, weight_bit_width=bits))


def _is_brevitas(layer: nn.Module) -> bool:
    return type(layer).__module__.startswith("brevitas.")


def quant_of(layer: nn.Module) -> tuple[np.ndarray, float] | None:
    """(integer weights, w_scale) a quantised layer computes with; None for a float layer."""
    with torch.no_grad():
        if _is_brevitas(layer):
            qw = layer.quant_weight()
            scale = float(torch.as_tensor(qw.scale).reshape(-1)[0])
            if torch.as_tensor(qw.scale).numel() != 1:
                raise InputError("per-channel Brevitas scales cannot be deployed: SpiNNaker2 "
                                 "has one weight scale per population")
            return qw.int().cpu().numpy().astype(np.int64), 1.0 / scale
        if isinstance(layer, QuantLinear | QuantConv2d):
            s = layer.w_scale()
            w = layer.quant_weight().cpu().numpy().astype(np.float64)
            return np.rint(w * s).astype(np.int64), s
    return None


def from_float(float_model: nn.Module, qat_model: nn.Module) -> nn.Module:
    """Copy the P-SNN's weights into the Q-SNN (same layer indices, as in the seed)."""
    sd = {k: v for k, v in float_model.state_dict().items() if k.endswith("weight")}
    missing = qat_model.load_state_dict(sd, strict=False)
    if missing.unexpected_keys:
        raise InputError(f"P-SNN weights {missing.unexpected_keys} have no place in the Q-SNN")
    return qat_model


def export_qat(model: nn.Module, input_shape: tuple[int, ...], dt: float) -> nir.NIRGraph:
    """NIR of a quantised model: weights = int / w_scale, metadata w_scale (and bits)."""
    plain = copy.deepcopy(model)
    meta: dict[str, dict] = {}
    for i, layer in enumerate(model):
        q = quant_of(layer)
        if q is None:
            continue
        w_int, s = q
        w = torch.as_tensor(w_int / s, dtype=torch.float32)
        if isinstance(layer, nn.Conv2d):
            new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                            stride=layer.stride, padding=layer.padding, bias=False)
        else:
            new = nn.Linear(layer.in_features, layer.out_features, bias=False)
        with torch.no_grad():
            new.weight.copy_(w)
        plain[i] = new
        meta[str(i)] = {"w_scale": float(s), "bits": 8}
    g = to_nir(plain, input_shape, dt)
    for name, m in meta.items():
        g.nodes[name].metadata = dict(m)
    return g


def integers(model: nn.Module) -> dict[str, np.ndarray]:
    """Layer index -> the integer weights the trained Q-SNN uses."""
    out = {}
    for i, layer in enumerate(model):
        q = quant_of(layer)
        if q is not None:
            out[str(i)] = q[0]
    return out


def check_integers(model: nn.Module, program, graph: Graph) -> dict:
    """Compare the compiled program's integer weights with the Q-SNN's own, layer by layer
    (each weight node feeds one projection, into the first population after it)."""
    result = {"layers": 0, "equal": True, "mismatches": 0}
    for name, w in integers(model).items():
        target = graph.successors(name)[0]
        while target not in program.populations:
            target = graph.successors(target)[0]
        proj = next(p for p in program.projections if p.post == target)
        chip_w = proj.weight
        if chip_w.shape != w.shape:  # SumPool -> Flatten -> Linear folded into a dense matrix
            chip_w = _pooled_columns(chip_w, program.populations[proj.pre].shape, w.shape[1])
        bad = w.size if chip_w is None else int(np.count_nonzero(chip_w != w))
        result["layers"] += 1
        result["mismatches"] += bad
        result["equal"] = result["equal"] and bad == 0
    return result


def _pooled_columns(chip_w: np.ndarray, pre_shape: tuple, in_f: int) -> np.ndarray | None:
    """The folded matrix repeats each pooled weight over its k x k window of pre neurons:
    take the window's first pre neuron for every pooled input (C, H//k, W//k)."""
    C, H, W = pre_shape
    for k in range(1, H + 1):
        Ho, Wo = H // k, W // k
        if C * Ho * Wo == in_f:
            cols = [(c * H + i * k) * W + j * k for c in range(C) for i in range(Ho)
                    for j in range(Wo)]
            return chip_w[:, cols]
    return None
