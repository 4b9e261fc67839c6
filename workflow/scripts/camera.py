"""Rule camera: camera (Wu & Smyth 2012) of every configured gene-set collection for one contrast,
each set's inter-gene correlation estimated from the residuals. The work is done in
trdpipe.enrichment.camera."""

import anndata as ad

from trdpipe.common import read_sample_table, run_script, write_table
from trdpipe.enrichment.analysis import load_de_results
from trdpipe.enrichment.camera import camera_collections, log_calls
from trdpipe.io.annotation import load_annotation


def main(smk) -> None:
    p = smk.params
    samples = read_sample_table(smk.input.samples).index
    table = camera_collections(
        load_de_results(smk.input.de),
        ad.read_h5ad(smk.input.vst),
        samples,
        p.design,
        dict(p.contrast),
        dict(p.collections),
        load_annotation(smk.input.annotation),
        min_size=int(p.min_size),
        max_size=int(p.max_size),
    )
    log_calls(table, float(p.fdr))
    write_table(table, smk.output.table, float_format="%.8g")


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
