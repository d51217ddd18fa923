"""kiln: immutable infrastructure deployments driven by CI/CD.

Layers (enforced by import-linter, see pyproject.toml):

    cli, api          entry points: parse, call a service, render
    bootstrap         composition root: builds adapters from settings
    services/adapters use cases / implementations of the ports
    ports             Protocols every side effect goes through
    core              pure domain: spec, artifacts, attest, ledger, rollout, ...
    errors            the KilnError hierarchy, importable from everywhere
"""

__version__ = "0.1.0"
