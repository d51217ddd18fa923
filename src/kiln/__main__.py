"""``python -m kiln`` runs the CLI."""

from kiln.cli.main import main

main()
