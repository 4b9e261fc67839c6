"""run_deseq2: the PyDESeq2 engine's results table of one contrast in one call."""

import anndata as ad
import pandas as pd

from trdpipe.model.engines.pydeseq2 import PyDESeq2Engine


def run_deseq2(adata: ad.AnnData, design: str, contrast: dict, settings: dict, n_cpus: int) -> pd.DataFrame:
    """Fit the model with PyDESeq2 and test the contrast; one row per gene, sorted by p-value."""
    shrink = settings.get("lfc_shrink", False)
    return PyDESeq2Engine(settings, n_cpus).fit_contrast(adata, design, contrast, shrink).table
