"""tasks stage of the spinnq pipeline."""
