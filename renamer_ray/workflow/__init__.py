"""Renaming files the user owns, in steps they control: a plan (``--dry-run``), apply, in place, undo."""
