"""Rule mirna_targets: for the miRNAs a contrast calls in one small-RNA assay, their targets among
the mRNA calls of the opposite direction against the pathway tests' label-permutation null, and
the correlation of each with its called targets. The work is done in
trdpipe.enrichment.mirna_targets."""

import anndata as ad

from trdpipe.common import read_sample_table, run_script, save_figure, write_table
from trdpipe.enrichment import mirna_targets as mt
from trdpipe.enrichment.analysis import load_de_results
from trdpipe.enrichment.figures import mirna_target_figure
from trdpipe.enrichment.phenotype_permutation import load_null_statistics
from trdpipe.io.mirna_targets import read_targets


def main(smk) -> None:
    alpha = float(smk.params.alpha)
    mirna_de, mrna_de = load_de_results(smk.input.mirna_de), load_de_results(smk.input.mrna_de)
    targets = read_targets(smk.input.targets, mirna_de["gene_id"], mrna_de, smk.wildcards.assay)
    universe = mt.tested_universe(mrna_de)
    called = mt.called_mirnas(mirna_de, alpha)
    null = load_null_statistics(smk.input.null, universe.index).to_numpy()
    enrichment = mt.target_enrichment(called, targets, universe, null, alpha)
    correlation = mt.target_correlations(
        called,
        targets,
        universe,
        alpha,
        ad.read_h5ad(smk.input.mirna_vst),
        ad.read_h5ad(smk.input.mrna_vst),
        read_sample_table(smk.input.samples).index,
    )
    mt.log_calls(enrichment, alpha)
    write_table(enrichment, smk.output.enrichment, float_format="%.6g")
    write_table(correlation, smk.output.correlation, float_format="%.6g")
    title = f"{smk.wildcards.assay}: {smk.wildcards.contrast}"
    save_figure(mirna_target_figure(enrichment, alpha, title), smk.output.figure)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
