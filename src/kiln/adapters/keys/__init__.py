"""Adapters for the keys port(s). See kiln.adapters."""
