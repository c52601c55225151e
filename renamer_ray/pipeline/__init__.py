"""Ray Data wiring: one module per stage, and :mod:`.run` that chains them into one run."""
