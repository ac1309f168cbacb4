"""Tunnel client and visitor roles."""
