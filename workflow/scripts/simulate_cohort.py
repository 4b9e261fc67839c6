"""Rule simulate_cohort: simulate a blood-transcriptome cohort of TRD patients and antidepressant
responders. The work is done in trdpipe.simulate."""

from pathlib import Path

import pandas as pd

from trdpipe.common import run_script
from trdpipe.resources.mirna import read_mirna_annotation
from trdpipe.simulate import SimulationParameters, load_gene_sets, simulate_cohort, write_cohort
from trdpipe.simulate_layers import read_candidates


def main(smk) -> None:
    params = SimulationParameters(
        n_samples=int(smk.params.n_samples),
        n_genes=int(smk.params.n_genes),
        seed=int(smk.params.seed),
    )
    annotation = pd.read_csv(smk.input.annotation, sep="\t", dtype=str)
    gene_sets = load_gene_sets(dict(smk.params.collections))
    cohort = simulate_cohort(
        annotation,
        gene_sets,
        params,
        read_mirna_annotation(smk.input.mirna_annotation),
        read_candidates(smk.input.candidate_variants),
    )
    write_cohort(cohort, Path(smk.output.counts).parent)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
