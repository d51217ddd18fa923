"""Adapters for the artifacts port(s). See kiln.adapters."""
