"""The toy checkpoint's world: the coloured shapes it was trained to name (demo samples, tests, benchmarks)."""
