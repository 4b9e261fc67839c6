"""Build the shipped gene annotation and gene-set resources from Bioconductor's SQLite files.

Inputs (no R needed; the SQLite files are read with Python's sqlite3):
  org.Hs.eg.sqlite  from Debian's r-bioc-org.hs.eg.db (Bioconductor org.Hs.eg.db)
  GO.sqlite         from Debian's r-bioc-go.db (Bioconductor GO.db)

Outputs:
  resources/annotation/genes.tsv.gz    one row per Ensembl gene ID
  resources/genesets/go_bp.gmt.gz      GO Biological Process sets of gene symbols
  resources/genesets/curated_trd.gmt   small curated sets of the mission's themes

Rules (also in resources/annotation/README.md and resources/genesets/README.md):

Ensembl IDs.  org.Hs.eg.db's ``ensembl`` table is the union of NCBI's gene2ensembl
(``ncbi2ensembl``: the Ensembl gene of the primary assembly NCBI links to each Entrez
gene) and Ensembl's own cross-references (``ensembl2ncbi``), which add the copies of a
gene on alternate haplotypes and patches (HLA-A has 8 such IDs, C4A 4).  An Ensembl
ID that only Ensembl links to an Entrez gene, while NCBI links that Entrez gene to a
different Ensembl ID, is such a copy and is left out: count matrices built on the
primary assembly (GENCODE, Ensembl "primary_assembly") never contain it, and keeping
it would give one symbol several IDs.

Several Entrez IDs for one Ensembl ID (readthrough transcripts, overlapping genes;
~350 IDs): the Entrez gene kept is the first by (1) the link is in both NCBI's and
Ensembl's tables, (2) the link is in NCBI's gene2ensembl, (3) NCBI gene type
protein-coding, (4) the smallest Entrez ID (numerically).

Chromosome: NCBI's chromosome; a gene placed on both X and Y (pseudo-autosomal) gets
"X" (Ensembl annotates PAR genes on X); "Un" (unplaced) becomes empty; any other
multiple placement is joined with ";".

GO BP propagation: a gene annotated to a term is added to every ancestor of the term
over ``is_a`` and ``part_of`` edges of GO.db's ``go_bp_parents`` (the GO "true path
rule").  GO.db's ``go_bp_offspring`` table, and org.Hs.eg.db's ``go_bp_all`` table
built from it, also follow ``regulates`` / ``positively regulates`` /
``negatively regulates`` edges, which would put every gene annotated to
"regulation of X" into X itself; GO does not propagate annotations over those
relations, so neither table is used.  Annotations with evidence ND (no biological
data; made to the root term) are dropped."""

from trdpipe.common import run_script
from trdpipe.resources.build import build


def main(smk) -> None:
    build(
        smk.input.orgdb,
        smk.input.godb,
        smk.output.genes,
        smk.output.go_bp,
        smk.output.curated,
    )


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
