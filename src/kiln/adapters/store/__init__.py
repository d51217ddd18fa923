"""Adapters for the store port(s). See kiln.adapters."""
