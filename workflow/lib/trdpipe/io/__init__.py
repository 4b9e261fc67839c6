"""Reading inputs: count formats, gene identifiers and annotation, gene sets; ingest."""
