"""The asyncio recorder engine: storage, ingest, RTSP server, simulated camera, runtime."""
