"""quant stage of the spinnq pipeline."""
