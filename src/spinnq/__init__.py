"""spinnq: spiking networks from PyTorch through NIR to SpiNNaker2, with the cost measured."""

__version__ = "0.1.0"
