"""Per-sample quality control before any model is fitted: library metrics and PCA of VST data."""

import logging

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pydeseq2.preprocessing import deseq2_norm  # noqa: E402

from de_model import variance_stabilise  # noqa: E402
from pipeline_common import save_figure, write_table  # noqa: E402

log = logging.getLogger("trd")


def library_metrics(adata: ad.AnnData) -> pd.DataFrame:
    """Library size, detected genes and DESeq2 median-of-ratios size factor per sample."""
    counts = np.asarray(adata.X)
    _, size_factors = deseq2_norm(counts)
    return pd.DataFrame(
        {
            "library_size": counts.sum(axis=1),
            "detected_genes": (counts > 0).sum(axis=1),
            "size_factor": size_factors,
        },
        index=pd.Index(adata.obs_names, name="sample_id"),
    )


def top_variable_pca(vst: np.ndarray, n_top_genes: int, n_components: int = 10
                     ) -> tuple[np.ndarray, np.ndarray]:
    """PCA scores and explained-variance ratios of the most variable genes (as DESeq2's plotPCA)."""
    top = np.argsort(-vst.var(axis=0), kind="stable")[:n_top_genes]
    centred = vst[:, top] - vst[:, top].mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(n_components, len(s))
    scores = u[:, :k] * s[:k]
    # Fix the sign of each component so that repeated runs draw the same picture.
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(k)])
    return scores * signs, (s**2 / (s**2).sum())[:k]


def pca_plot(scores: np.ndarray, explained: np.ndarray, labels: pd.Series, title: str):
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for level in sorted(labels.unique()):
        hit = (labels == level).to_numpy()
        ax.scatter(scores[hit, 0], scores[hit, 1], s=18, label=str(level))
    ax.set_xlabel(f"PC1 ({explained[0]:.0%})")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False)
    return fig


def main(smk) -> None:
    adata = ad.read_h5ad(smk.input.h5ad)
    metrics = library_metrics(adata)
    metrics["flags"] = ""
    metrics["excluded"] = False
    vst = variance_stabilise(adata, {}, smk.threads)
    scores, explained = top_variable_pca(vst, smk.params.n_top_genes)
    write_table(metrics, smk.output.metrics, index=True)
    save_figure(pca_plot(scores, explained, adata.obs["group"], "PCA of VST data by group"), smk.output.pca)


if "snakemake" in globals():
    from pipeline_common import run_script

    run_script(main, snakemake)  # noqa: F821
