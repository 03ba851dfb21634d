"""Thin adapters, one module per AWS service; each takes a typed client and plain values."""
