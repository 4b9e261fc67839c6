"""The label-permutation null of a contrast: permutations within strata, refits, summaries."""
