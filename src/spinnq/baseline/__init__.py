"""baseline stage of the spinnq pipeline."""
