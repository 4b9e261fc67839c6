"""Simulate a blood-transcriptome cohort of TRD patients and antidepressant responders.

The cohort has a known answer: every gene's true log2 fold change (TRD vs
responder), whole pathways shifted coherently, and three planted QC hazards.
It is deterministic for a given seed: the bundled toy cohort in resources/toy/
is this module's output with the defaults, and a test regenerates it byte for byte.

Counts are negative binomial with a DESeq2-like mean-dispersion trend
(alpha = a1 / mean + a0, log-normal scatter), per-sample size factors, and
effects of group, site, sex (X/Y genes) and age. Three features make it behave
like real whole blood rather than like independent genes:

- co-expression: latent per-sample factors, independent of group, shared by the
  genes of GO BP sets (modules) and by broad random gene sets, so that genes of a
  pathway are correlated as in real blood data;
- cell composition: per-sample proportions of eleven blood cell types whose means
  differ between TRD and responders; marker genes follow their type's proportion
  and nothing else (class `composition`), while regulated genes differ within cells
  (class `regulated`);
- heterogeneity: the within-cell group effects of a patient scale with a per-patient
  signature strength (mean 1 in TRD, 0 in responders), and its cell shifts with a second,
  independent one, so group means differ as planted but no patient is classified with
  certainty, and the cell shares do not stand in for the within-cell signature."""

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
