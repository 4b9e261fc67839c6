"""Rule simulate_cohort: simulate a blood-transcriptome cohort of TRD patients and antidepressant
responders. The work is done in trdpipe.simulate."""

from pathlib import Path

import pandas as pd

from trdpipe.common import run_script
from trdpipe.simulate import SimulationParameters, load_gene_sets, simulate_cohort, write_cohort


def main(smk) -> None:
    params = SimulationParameters(
        n_samples=int(smk.params.n_samples),
        n_genes=int(smk.params.n_genes),
        seed=int(smk.params.seed),
    )
    annotation = pd.read_csv(smk.input.annotation, sep="\t", dtype=str)
    gene_sets = load_gene_sets(dict(smk.params.collections))
    cohort = simulate_cohort(annotation, gene_sets, params)
    write_cohort(cohort, Path(smk.output.counts).parent)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
