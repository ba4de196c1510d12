"""Output provenance: the invisible watermark and the PNG metadata every output carries.

Importing this package does not import torch, so the front end can use it for ``verify``.
"""

from stylebot.provenance.metadata import (
    IPTC_EXT_NS,
    STYLEBOT_XMP_NS,
    TRAINED_ALGORITHMIC_MEDIA,
    OutputMetadata,
    a1111_parameters,
    digital_source_type,
    encode_png,
    read_output_metadata,
    read_png_metadata,
    software_name,
    xmp_output_id,
)
from stylebot.provenance.watermark import (
    MIN_WATERMARK_PIXELS,
    WatermarkReading,
    embed_watermark,
    inspect_watermark,
    new_output_id,
    read_watermark,
)

__all__ = [
    "IPTC_EXT_NS",
    "MIN_WATERMARK_PIXELS",
    "STYLEBOT_XMP_NS",
    "TRAINED_ALGORITHMIC_MEDIA",
    "OutputMetadata",
    "WatermarkReading",
    "a1111_parameters",
    "digital_source_type",
    "embed_watermark",
    "encode_png",
    "inspect_watermark",
    "new_output_id",
    "read_output_metadata",
    "read_png_metadata",
    "read_watermark",
    "software_name",
    "xmp_output_id",
]
