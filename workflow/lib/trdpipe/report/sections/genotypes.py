"""Genotypes of candidate genes: the eQTL table with expression by genotype, each contrast's
association table, and what they say in a sentence each."""

import pandas as pd

from trdpipe.report.embed import figure
from trdpipe.report.inputs import Run, read_tsv
from trdpipe.report.text import join_words, table_rows

EQTL_SHOWN = [
    "gene",
    "variant_id",
    "ref",
    "alt",
    "n",
    "alt_frequency",
    "beta",
    "se",
    "pvalue",
    "padj",
    "note",
]
ASSOCIATION_SHOWN = [
    "feature",
    "gene",
    "n_test",
    "n_reference",
    "alt_frequency_test",
    "alt_frequency_reference",
    "carriers_test",
    "carriers_reference",
    "odds_ratio",
    "se",
    "pvalue",
    "padj",
    "note",
]


def eqtl_sentence(table: pd.DataFrame, cut: float) -> str:
    """How many gene x variant tests have an eQTL at BH-adjusted p < cut, naming them, and which
    candidate genes could not be tested."""
    tested = table[table["pvalue"].notna()]
    called = tested[tested["padj"] < cut]
    untested = sorted(set(table["gene"]) - set(tested["gene"]))
    not_tested = (
        f"Not tested, as the expression filter removed them: {join_words(untested)}." if untested else ""
    )
    if tested.empty:
        return f"No candidate gene was tested. {not_tested}".strip()
    found = (
        "none has an eQTL"
        if called.empty
        else f"{len(called)} {'has an eQTL' if len(called) == 1 else 'have an eQTL'}: "
        + join_words(
            [f"{r.gene} with {r.variant_id} ({r.beta:+.2f} per {r.alt} allele)" for r in called.itertuples()]
        )
    )
    sentence = (
        f"Of {len(tested)} candidate gene x variant tests, {found} at BH-adjusted p < {cut:g} "
        f"(BH across the {len(tested)} tests of the table)."
    )
    return f"{sentence} {not_tested}".strip()


def association_sentence(table: pd.DataFrame, contrast: dict, cut: float) -> str:
    """Which variants and scores are associated with the contrast at BH-adjusted p < cut, and how many
    could not be fitted."""
    tested = table[table["pvalue"].notna()]
    called = tested[tested["padj"] < cut]
    found = (
        "none is associated"
        if called.empty
        else join_words([f"{r.feature} (odds ratio {r.odds_ratio:.2f})" for r in called.itertuples()])
        + (" is" if len(called) == 1 else " are")
        + " associated"
    )
    sentence = (
        f"Of {len(tested)} variants and scores tested, {found} with {contrast['test']} vs "
        f"{contrast['reference']} at BH-adjusted p < {cut:g} (BH across the {len(tested)} tests of the table)."
    )
    not_fitted = len(table) - len(tested)
    if not_fitted:
        sentence += (
            f" {not_fitted} could not be fitted (too rare, or separating the groups: the table says which)."
        )
    return sentence


def shown_table(table: pd.DataFrame, columns: list[str]) -> dict:
    """The columns shown, rounded; a row without a note has an empty one, not NA."""
    return table_rows(table[columns].round(4).assign(note=table["note"].fillna("")))


def build(run: Run) -> dict | None:
    if not run.inputs.genotype_eqtl:
        return None
    cut = run.config["de"]["alpha"]
    eqtl = read_tsv(run.inputs.genotype_eqtl)
    associations = [
        {
            "name": name,
            "sentence": association_sentence(read_tsv(path), run.contrasts[name], cut),
            "table": shown_table(read_tsv(path), ASSOCIATION_SHOWN),
        }
        for name, path in run.inputs.each("genotype_association").items()
    ]
    return {
        "toc": [{"anchor": "genotypes", "label": "Genotypes of candidate genes"}],
        "eqtl_sentence": eqtl_sentence(eqtl, cut),
        "eqtl": shown_table(eqtl, EQTL_SHOWN),
        "figures": [figure(run.inputs.genotype_eqtl_figure, run.template_dir, run.config)],
        "associations": associations,
    }
