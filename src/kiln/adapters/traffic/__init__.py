"""Adapters for the traffic port(s). See kiln.adapters."""
