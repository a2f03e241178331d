"""Sans-IO Privacy Pass and PST formats: bytes and header text in, values out."""
