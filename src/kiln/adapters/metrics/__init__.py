"""Adapters for the metrics port(s). See kiln.adapters."""
