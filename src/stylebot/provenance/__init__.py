"""Output provenance: the invisible watermark and the PNG metadata every output carries."""
