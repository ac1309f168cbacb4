"""Test helpers: vector loading, real processes, real peers."""
