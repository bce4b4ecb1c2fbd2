"""ISO base media file format (ISO/IEC 14496-12): box reading/writing and the MP4 muxer."""
