"""Kept for old imports: the quant stage resolves its settings in `spinnq.resolve`, like every
other stage (one implementation)."""

from spinnq.resolve import configs, has_scales, resolve

__all__ = ["configs", "has_scales", "resolve"]
