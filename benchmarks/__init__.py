"""kiln's benchmarks: each compares side by side against a named baseline."""
