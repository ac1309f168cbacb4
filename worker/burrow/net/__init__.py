"""asyncio adapters around the sans-IO codecs, used by server workers and clients."""
