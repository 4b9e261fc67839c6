import anndata as ad
import numpy as np
import pandas as pd
from pydeseq2.preprocessing import deseq2_norm

from nb_cohort import simulate_nb_cohort
from vst import vst_cohort


def test_vst_keeps_samples_and_genes_and_approaches_log2_for_high_counts():
    counts, metadata = simulate_nb_cohort(24, 300, seed=5, design="group")
    adata = ad.AnnData(X=counts.to_numpy(), obs=metadata,
                       var=pd.DataFrame({"gene_symbol": counts.columns}, index=counts.columns))
    result = vst_cohort(adata, {"inference": "batched"}, n_cpus=1)
    assert result.shape == adata.shape
    assert result.obs.equals(adata.obs) and result.var.equals(adata.var)
    # DESeq2's VST is log2-like: for well-expressed genes it is close to log2 normalised counts
    normalised, _ = deseq2_norm(counts.to_numpy())
    high = normalised.min(axis=0) > 500
    assert high.sum() > 10
    np.testing.assert_allclose(result.X[:, high], np.log2(normalised[:, high]), atol=0.1)
    # and it is monotone in the normalised count within every gene
    order = np.argsort(normalised[:, 0])
    assert np.all(np.diff(result.X[order, 0]) >= -1e-9)
