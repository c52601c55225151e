"""The product as users run it: `renamer-ray up`, the CLI, `ray job submit`, the page in Chromium, faults."""
