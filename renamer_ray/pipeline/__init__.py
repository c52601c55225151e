"""Ray Data wiring: one module per stage, :mod:`.build` that lists them, :mod:`.run` that runs one rename."""
