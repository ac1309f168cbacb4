"""Routing: ingress rules, client-side node matching, connector selection. Sans-IO."""
