"""report stage of the spinnq pipeline."""
