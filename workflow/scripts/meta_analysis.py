"""Rule meta_analysis: the cohorts' own fits of a contrast combined per gene (random-effects
inverse-variance meta-analysis, trdpipe.model.meta), compared with the pooled mega-analysis (the
primary DE table), with forest plots of the top and the candidate genes."""

import logging

import pandas as pd

from trdpipe.common import run_script, save_figure, write_table
from trdpipe.model.figures import forest_plot
from trdpipe.model.meta import (
    candidate_rows,
    cohort_summary,
    high_heterogeneity,
    meta_concordance,
    meta_table,
)

log = logging.getLogger("trd")


def main(smk) -> None:
    settings, contrast = dict(smk.params.meta), dict(smk.params.contrast)
    alpha, k = smk.params.alpha, int(settings["replication_k"])
    fits = cohort_summary(
        [pd.read_csv(path, sep="\t", dtype={"cohort": str}) for path in smk.input.fits],
        dict(smk.params.left_out),
    )
    for row in fits[~fits["fitted"]].itertuples():
        log.warning("cohort %s left out of the meta-analysis: %s", row.cohort, row.reason)
    by_cohort = dict(zip(smk.params.cohorts, smk.input.tables))
    fitted = fits.loc[fits["fitted"], "cohort"].tolist()
    tables = {c: pd.read_csv(by_cohort[c], sep="\t", dtype={"gene_id": str}) for c in fitted}
    if len(fitted) < 2:
        log.warning(
            "contrast %s: %d cohort(s) fitted, fewer than the two a meta-analysis needs",
            smk.wildcards.contrast,
            len(fitted),
        )
    mega = pd.read_csv(smk.input.mega, sep="\t", dtype={"gene_id": str})
    var = mega.set_index("gene_id")[["gene_symbol"]]
    meta = meta_table(tables, var, float(settings["replication_pvalue"]), k)
    high_i2 = float(settings["high_i2"])
    summary = meta_concordance(mega, meta, alpha, high_i2, k, len(fitted))
    log.info(
        "meta-analysis of %d cohorts (%s):\n%s",
        len(fitted),
        ", ".join(fitted),
        summary.to_string(index=False),
    )
    write_table(meta, smk.output.table, float_format="%.8g")
    write_table(fits, smk.output.cohorts)
    write_table(summary, smk.output.concordance, float_format="%.6g")
    write_table(high_heterogeneity(meta, mega, high_i2), smk.output.heterogeneity, float_format="%.8g")
    top = meta.dropna(subset=["pvalue"]).head(int(settings["forest_top_genes"]))
    candidates = candidate_rows(meta, list(smk.params.candidates))
    save_figure(forest_plot(top, fitted, contrast), smk.output.forest_top)
    save_figure(forest_plot(candidates, fitted, contrast), smk.output.forest_candidates)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
