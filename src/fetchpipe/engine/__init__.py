"""The fetch engine: scheduler -> limits -> retry -> transport, on one asyncio loop."""
