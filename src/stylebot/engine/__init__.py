"""The GPU-side engine: loading the base pipeline and generating images."""
