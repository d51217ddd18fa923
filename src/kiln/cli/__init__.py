"""The ``kiln`` command line: parse, call one service function, render.

``main`` holds the lazy command table so ``kiln --help`` imports nothing heavy.
May import everything below it; ``kiln.api`` only to run the controller (`kiln serve`).
"""
