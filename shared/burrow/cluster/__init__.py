"""Burrow cluster: the Redis layout and liveness rules (sans IO)."""
