"""The controller's HTTP API and dashboard: thin, calls the same services as the CLI.

May import: ``kiln.bootstrap`` and everything below it.
"""
