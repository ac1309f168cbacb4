"""The server role: relay port, entry points, routing, the tunnel pool and cross-worker handoff."""
