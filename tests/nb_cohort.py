"""A small negative-binomial cohort simulator for testing and benchmarking DESeq2 backends.

Independent of the pipeline's simulator (which plants pathways and needs the
shipped annotation): this one only needs a design, so tests can make cohorts
of any size in milliseconds.
"""

import numpy as np
import pandas as pd

DESIGNS = {
    "group": "~ group",
    "age_group": "~ age + group",
    "full": "~ site + sex + age + group",
}


def simulate_nb_cohort(
    n_samples: int,
    n_genes: int,
    seed: int = 0,
    design: str = "full",
    de_fraction: float = 0.1,
    n_outliers: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Counts (samples x genes) and metadata for a TRD-vs-responder style cohort.

    Means follow log-normal base levels with covariate effects (site, sex,
    age) and a group effect on ``de_fraction`` of the genes; dispersions
    follow a DESeq2-like trend 0.05 + 1/mean with log-normal scatter.
    ``n_outliers`` single counts are multiplied by 50 (Cook's outliers).
    Covariates outside ``design`` do not affect the counts.
    """
    rng = np.random.default_rng(seed)
    terms = DESIGNS[design]
    metadata = pd.DataFrame(
        {
            "site": rng.choice(["A", "B", "C"], n_samples),
            "sex": rng.choice(["F", "M"], n_samples),
            "age": rng.normal(0.0, 1.0, n_samples),
            "group": np.where(np.arange(n_samples) % 2 == 0, "responder", "TRD"),
        },
        index=[f"S{i:05d}" for i in range(n_samples)],
    )
    metadata["group"] = pd.Categorical(metadata["group"], categories=["responder", "TRD"])

    log_mean = rng.normal(np.log(200), 1.6, n_genes)
    lfc = np.where(rng.random(n_genes) < de_fraction, rng.normal(0, 0.8, n_genes), 0.0)
    linear = log_mean[None, :] + np.outer(metadata["group"] == "TRD", lfc)
    if "site" in terms:
        site_effect = rng.normal(0, 0.3, (3, n_genes))
        linear += site_effect[metadata["site"].map({"A": 0, "B": 1, "C": 2}).to_numpy()]
    if "sex" in terms:
        linear += np.outer(metadata["sex"] == "M", rng.normal(0, 0.2, n_genes))
    if "age" in terms:
        linear += np.outer(metadata["age"], rng.normal(0, 0.15, n_genes))
    size_factors = np.exp(rng.normal(0, 0.25, n_samples))
    mu = size_factors[:, None] * np.exp(linear)

    dispersion = (0.05 + 1 / np.exp(log_mean)) * np.exp(rng.normal(0, 0.5, n_genes))
    counts = rng.negative_binomial(1 / dispersion, 1 / (1 + mu * dispersion))
    if n_outliers:
        rows = rng.integers(0, n_samples, n_outliers)
        cols = rng.choice(n_genes, n_outliers, replace=False)
        counts[rows, cols] = counts[rows, cols] * 50 + 100
    columns = [f"G{j:05d}" for j in range(n_genes)]
    return pd.DataFrame(counts, index=metadata.index, columns=columns), metadata
