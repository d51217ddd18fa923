"""Adapters for the runtime port(s). See kiln.adapters."""
