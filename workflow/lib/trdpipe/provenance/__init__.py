"""Provenance: software versions and the optional MultiQC report."""
