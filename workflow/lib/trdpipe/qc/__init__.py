"""Per-sample quality control: metrics, flags, PCA, covariate tables and confounding; their figures."""
