"""The ledger: append-only events, an RFC 6962 Merkle tree over them, signed
checkpoints, inclusion and consistency proofs. Pure; storage is behind the
``EventLog``/``Recorder`` ports.
"""
