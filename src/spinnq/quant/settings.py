"""Kept for old imports: the quant stage resolves its settings in `spinnq.resolver`, like every
other stage (one implementation)."""

from spinnq.resolver import configs, has_scales, resolve

__all__ = ["configs", "has_scales", "resolve"]
