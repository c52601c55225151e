"""The per-file record (manifest.jsonl) and which earlier records a run may trust."""
