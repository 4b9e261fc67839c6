"""The limma-voom engine: R limma's voom, lmFit and eBayes, through pylimma (a Python port of
limma; GPL-3.0-or-later, so an optional extra: requirements-extras.txt).

voom as R's voom(counts, design) with its defaults: log2-CPM with the column sums as library
sizes (no TMM), precision weights from the fit's mean-variance trend; the moderated t-test of the
contrast's coefficient, BH over every gene (limma has no independent filtering). The table fills
every column of the results contract; limma has no shrunk fold change, so
log2FoldChange_shrunk is absent even with lfc_shrink (the figures then draw the unshrunk one).
"""

from collections.abc import Callable

import anndata as ad
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from trdpipe.common import InputError
from trdpipe.model.design import contrast_model_matrix
from trdpipe.model.engines import missing_package_message
from trdpipe.model.engines.base import ContrastFit, DEEngine, NullFit
from trdpipe.model.results import results_table
from trdpipe.model.sensitivity import model_design


def pylimma():
    """pylimma, or a message saying how to install it."""
    try:
        import pylimma
    except ImportError:
        raise InputError(missing_package_message("limma_voom")) from None
    return pylimma


def library_factors(counts: np.ndarray) -> np.ndarray:
    """Each sample's library size over their geometric mean: the normalised counts' divisors."""
    sizes = counts.sum(axis=1)
    return sizes / np.exp(np.log(sizes).mean())


def voom_fit(counts: np.ndarray, design: np.ndarray, n_cpus: int):
    """voom, lmFit and eBayes of counts (samples x genes) on a design matrix: limma's fit."""
    limma = pylimma()
    # lmFit solves one small weighted least-squares problem per gene: BLAS threads beyond the
    # job's made it 20 times slower on a loaded machine (27 CPU s instead of 1.4 on the toy)
    with threadpool_limits(limits=n_cpus, user_api="blas"):
        elist = limma.voom(counts.T, design)
        return elist, limma.e_bayes(limma.lm_fit(elist, design))


class LimmaVoomEngine(DEEngine):
    name = "limma_voom"
    method = "limma-voom (pylimma), moderated t-test"

    def fit_contrast(
        self, adata: ad.AnnData, design: str, contrast: dict, shrink: bool = False
    ) -> ContrastFit:
        counts = np.asarray(adata.X, dtype=float)
        matrix, coefficient = contrast_model_matrix(adata.obs, design, contrast)
        _, fit = voom_fit(counts, matrix.to_numpy(dtype=float), self.n_cpus)
        column = list(matrix.columns).index(coefficient)
        normalised = counts / library_factors(counts)[:, None]
        return ContrastFit(self.contrast_table(fit, column, normalised, adata.var), normalised)

    @staticmethod
    def contrast_table(fit, column: int, normalised: np.ndarray, var: pd.DataFrame) -> pd.DataFrame:
        """The contract's columns from limma's fit: logFC, the moderated standard error
        sqrt(s2.post) * stdev.unscaled, moderated t, its p-value and BH."""
        table = pylimma().top_table(fit, coef=column, number=np.inf, sort_by="none")
        table = pd.DataFrame(
            {
                "baseMean": normalised.mean(axis=0),
                "log2FoldChange": table["log_fc"].to_numpy(),
                "lfcSE": np.sqrt(fit["s2_post"]) * np.asarray(fit["stdev_unscaled"])[:, column],
                "stat": table["t"].to_numpy(),
                "pvalue": table["p_value"].to_numpy(),
                "padj": table["adj_p_value"].to_numpy(),
            },
            index=var.index,
        )
        return results_table(table, var)

    def fit_without_contrast(self, adata: ad.AnnData, design: str, contrast: dict) -> NullFit:
        """voom on the reduced design: weight w / s2.post and weighted residual w (E - fitted) /
        s2.post on the log-CPM scale (the weighted least-squares score of the coefficient)."""
        counts = np.asarray(adata.X, dtype=float)
        reduced = model_design(design, {"remove": [contrast["variable"]]})
        matrix, _ = contrast_model_matrix(adata.obs, reduced, contrast)
        z = matrix.to_numpy(dtype=float)
        elist, fit = voom_fit(counts, z, self.n_cpus)
        fitted = z @ np.asarray(fit["coefficients"]).T  # samples x genes
        weight = np.asarray(elist["weights"]).T / np.asarray(fit["s2_post"])
        return NullFit(weighted_residual=weight * (np.asarray(elist["E"]).T - fitted), weight=weight, z=z)

    def permutation_refits(
        self, adata: ad.AnnData, design: str, contrast: dict
    ) -> Callable[[pd.Series], pd.DataFrame]:
        """voom's weights depend on the design, so each labelling is a whole refit (seconds)."""

        def refit(labels: pd.Series) -> pd.DataFrame:
            obs = adata.obs.copy()
            obs[contrast["variable"]] = labels.loc[obs.index].to_numpy()
            relabelled = ad.AnnData(X=adata.X, obs=obs, var=adata.var)
            table = self.fit_contrast(relabelled, design, contrast).table
            return table.set_index("gene_id").loc[adata.var_names]

        return refit
