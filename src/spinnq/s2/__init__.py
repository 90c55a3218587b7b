"""s2 stage of the spinnq pipeline."""
