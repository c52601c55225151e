"""The command line: ``renamer-ray`` and its commands (main), the submit client, progress and the summary."""

from renamer_ray.cli.main import SAMPLES, main

__all__ = ["SAMPLES", "main"]
