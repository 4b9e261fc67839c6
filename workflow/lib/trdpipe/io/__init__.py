"""Reading inputs: count formats, the sample sheet, gene identifiers and annotation, gene sets."""
