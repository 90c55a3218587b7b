"""Training-side spiking neurons whose forward pass is exactly the chip's (and NIR's) step.

    v = beta * v + x;   s = v > threshold;   v = v - s * threshold   (or v = 0: reset 'zero')

This is the order SpiNNaker2 uses (input added after the decay, strict threshold, reset right
after the spike), and what NIR's LIF means under forward Euler with tau = dt / (1 - beta),
r = tau / dt. It is *not* snnTorch's default, which subtracts the previous step's spike
before the decay; training in the deployed form removes that mismatch from the start.

Modules act on whole sequences (B, T, *features) and scan over T, so weight layers in
`SpikingSequential` run once on (B*T, ...) instead of T times.
"""

from __future__ import annotations

import torch
from torch import nn

from spinnq.errors import InputError
from spinnq.nn.functional import li_step, lif_chunk, lif_step


class FastSigmoidSpike(torch.autograd.Function):
    """Heaviside forward; fast-sigmoid surrogate gradient 1 / (slope |x| + 1)^2 backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (x,) = ctx.saved_tensors
        return g / (ctx.slope * x.abs() + 1.0) ** 2, None


def spike(x: torch.Tensor, slope: float = 25.0) -> torch.Tensor:
    return FastSigmoidSpike.apply(x, slope)


def _check_beta(beta: float) -> float:
    if not 0.0 < float(beta) <= 1.0:
        raise InputError(f"beta (decay per step) must be in (0, 1], got {beta}")
    return float(beta)


class LIF(nn.Module):
    """Leaky integrate-and-fire over a sequence; beta = 1 makes it an IF neuron.

    `fused` (default): the whole sequence is one autograd node with a hand-written reverse
    scan (`functional.lif_sequence`), the same spikes and gradients as stepping `lif_step`
    under autograd (`fused=False`, the reference it is tested against) at a fraction of the
    time and memory traffic."""

    def __init__(self, beta: float = 0.9, threshold: float = 1.0, reset: str = "subtract",
                 slope: float = 25.0, detach_reset: bool = True, fused: bool = True):
        super().__init__()
        if reset not in ("subtract", "zero"):
            raise InputError(f"reset must be 'subtract' or 'zero', got {reset!r}")
        if threshold <= 0:
            raise InputError(f"threshold must be > 0, got {threshold}")
        self.beta, self.threshold = _check_beta(beta), float(threshold)
        self.reset, self.slope, self.detach_reset = reset, float(slope), detach_reset
        self.fused = fused  # one autograd node per layer (`lif_sequence`); False: per step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scan(x, None)[0]

    def scan(self, x: torch.Tensor, v: torch.Tensor | None,
             out: tuple[torch.Tensor, torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(spikes, membrane after the last step) over x (B, T, *F) from membrane v (B, *F;
        None: at rest): a sequence scanned in time chunks, each from the last membrane,
        gives the spikes and gradients of scanning it whole. `out`: buffers for the fused
        scan (`functional.lif_chunk`), ignored when stepping."""
        if self.fused:
            return lif_chunk(x, v, self.beta, self.threshold, self.reset, self.slope,
                             self.detach_reset, out)
        v = torch.zeros_like(x[:, 0]) if v is None else v
        out = []
        for xt in x.unbind(1):  # unbind, not x[:, t]: its backward is one stack, not T fills
            s, v = lif_step(xt, v, self.beta, self.threshold, self.reset,
                            lambda u: spike(u, self.slope), self.detach_reset)
            out.append(s)
        return torch.stack(out, dim=1), v

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}, reset={self.reset}"


class LI(nn.Module):
    """Non-spiking leaky integrator read-out: returns the membrane trace (B, T, *F).

    On the chip this is a population that never fires and whose voltage is recorded.
    """

    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta = _check_beta(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scan(x, None)[0]

    def scan(self, x: torch.Tensor, v: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(membrane trace, last membrane) over x (B, T, *F) from v (None: at rest)."""
        v = torch.zeros_like(x[:, 0]) if v is None else v
        out = []
        for xt in x.unbind(1):
            v = li_step(xt, v, self.beta)
            out.append(v)
        return torch.stack(out, dim=1), v

    def extra_repr(self) -> str:
        return f"beta={self.beta}"
