"""The seed paper's DVS-gesture network (NICE 2025), exactly:

    2x32x32 -> Conv 5x5 s2 p1 (16) -> LIF -> Conv 3x3 p1 (16) -> LIF -> SumPool 2
            -> Conv 3x3 p1 (8) -> LIF -> SumPool 2 -> Flatten (72) -> Linear 256 -> LIF
            -> Linear 11 -> LIF                       25,504 weights, no biases

LIF beta 0.93, threshold 1, reset by subtraction, fast-sigmoid surrogate. The pooling sits
right before a convolution / the flatten, which is where SpiNNaker2 fuses it into the next
projection. `quant` picks the weight layers: float (P-SNN), spinnq's chip-exact fake-quant,
or Brevitas's (Q-SNN, `qat.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from spinnq.nn import LIF, QuantConv2d, QuantLinear, SpikingSequential, SumPool2d
from spinnq.settings import Limit

N_CLASSES = 11
SEED_WEIGHTS = 25_504  # mission.md, seed paper B


@dataclass(frozen=True)
class ModelConfig:
    LIMITS: ClassVar[dict[str, Limit]] = {
        "beta": Limit(0, 1), "threshold": Limit(0, 1e6, lo_open=True),
        "slope": Limit(0, 1e6, lo_open=True), "size": Limit(1, 512), "n_classes": Limit(1, 1000)}

    beta: float = 0.93
    threshold: float = 1.0
    slope: float = 9.7  # fast-sigmoid surrogate slope (seed: about 9.7)
    size: int = 32
    n_classes: int = N_CLASSES


def _float_layers() -> tuple[Callable, Callable]:
    return (lambda i, o, k, **kw: nn.Conv2d(i, o, k, bias=False, **kw),
            lambda i, o: nn.Linear(i, o, bias=False))


def _spinnq_layers(bits: int = 8) -> tuple[Callable, Callable]:
    return (lambda i, o, k, **kw: QuantConv2d(i, o, k, bias=False, bits=bits, **kw),
            lambda i, o: QuantLinear(i, o, bias=False, bits=bits))


LAYERS: dict[str, Callable[[], tuple[Callable, Callable]]] = {
    "float": _float_layers,
    "spinnq": _spinnq_layers,
}


def build_model(cfg: ModelConfig = ModelConfig(), quant: str = "float") -> SpikingSequential:
    """The seed's network; `quant` in LAYERS ('float', 'spinnq') or 'brevitas' (qat.py)."""
    if quant == "brevitas":
        from spinnq.quant.brevitas import brevitas_layers
        conv, lin = brevitas_layers()
    else:
        conv, lin = LAYERS[quant]()

    def lif() -> LIF:
        return LIF(beta=cfg.beta, threshold=cfg.threshold, reset="subtract", slope=cfg.slope)

    s = cfg.size
    s1 = (s + 2 - 5) // 2 + 1  # 15
    s3 = (s1 // 2) // 2  # 3
    return SpikingSequential(
        conv(2, 16, 5, stride=2, padding=1), lif(),
        conv(16, 16, 3, padding=1), lif(), SumPool2d(2),
        conv(16, 8, 3, padding=1), lif(), SumPool2d(2),
        nn.Flatten(), lin(8 * s3 * s3, 256), lif(),
        lin(256, cfg.n_classes), lif(),
    )


def n_weights(model: nn.Module) -> int:
    """Trainable weights of the weight layers (the seed counts 25,504 for 32x32 input)."""
    return sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight"))
