"""Sans-IO file and bitstream formats (H.264/H.265 NAL units, frame stamps, ISO BMFF later)."""
