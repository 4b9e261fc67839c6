"""TRD prediction: feature sets and learners in repeated nested cross-validation."""
