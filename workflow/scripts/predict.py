"""Rule predict: predict the contrast's test group (TRD) from clinical covariates, each molecular
layer (the assays, the genotypes) and their combinations. The work is done in
trdpipe.predict.contrast, the figures are drawn by trdpipe.predict.figures."""

import anndata as ad
from threadpoolctl import threadpool_limits

from trdpipe.common import run_script, save_figure, write_table
from trdpipe.predict.contrast import predict_contrast
from trdpipe.predict.features import read_layers
from trdpipe.predict.figures import prediction_figures


def main(smk) -> None:
    adata = ad.read_h5ad(smk.input.h5ad)
    with threadpool_limits(smk.threads):
        result = predict_contrast(
            adata,
            dict(smk.params.contrast),
            dict(smk.params.predict),
            dict(smk.params.filter),
            dict(smk.params.deseq2),
            smk.params.design,
            int(smk.params.seed),
            smk.threads,
            smk.params.layers["primary"],
            read_layers(smk.params.layers, list(smk.input.assays), smk.input.genotypes, adata.obs),
        )
    for key in ("comparison", "gains", "predictions", "site", "genes", "null"):
        write_table(result[key], smk.output[key], float_format="%.6g")
    for key, figure in prediction_figures(result, dict(smk.params.contrast)).items():
        save_figure(figure, smk.output[key])


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
