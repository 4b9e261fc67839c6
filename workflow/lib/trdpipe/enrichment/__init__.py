"""Pathway enrichment: preranked GSEA and ORA, their label-permutation null, term folding."""
