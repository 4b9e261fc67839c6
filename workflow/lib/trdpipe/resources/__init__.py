"""The builders of resources/: gene sets, annotation and cell markers (run by the resources rules)."""
