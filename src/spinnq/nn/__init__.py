"""nn stage of the spinnq pipeline."""
