"""The command line: ``renamer-ray`` and its commands (main), the submit client, progress and the summary."""

from renamer_ray.cli.main import main
from renamer_ray.cli.parser import SAMPLES

__all__ = ["SAMPLES", "main"]
