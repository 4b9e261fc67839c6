"""Checks that stop a run before any fitting: the config, the counts, the sample sheet, the design."""
