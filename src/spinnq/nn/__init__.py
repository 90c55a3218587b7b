"""Training-side neurons and layers (surrogate gradients, chip-exact fake-quant) and their
export to NIR."""

from spinnq.nn.export import to_nir
from spinnq.nn.layers import QuantConv2d, QuantLinear, SpikingSequential, SumPool2d
from spinnq.nn.neurons import LI, LIF, spike

__all__ = ["LI", "LIF", "QuantConv2d", "QuantLinear", "SpikingSequential", "SumPool2d",
           "spike", "to_nir"]
