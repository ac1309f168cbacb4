"""The admin endpoint's data model, JSON views and Prometheus rendering (no sockets here)."""
