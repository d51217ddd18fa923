"""The ``kiln`` command line: parse, call one service function, render.

``main`` holds the lazy command table so ``kiln --help`` imports nothing heavy.
May import: ``kiln.bootstrap`` and everything below it; never ``kiln.api``.
"""
