# Rebuild the shipped annotation and gene sets from Bioconductor's SQLite files (not part of `all`).
# How to get the two files (Debian packages, no R needed) and what the rules are:
# resources/annotation/README.md and resources/genesets/README.md.
#
#   snakemake --cores 1 -f build_resources --config \
#       orgdb_sqlite=/path/to/org.Hs.eg.db/extdata/org.Hs.eg.sqlite \
#       godb_sqlite=/path/to/GO.db/extdata/GO.sqlite
#
# The outputs are committed files that other rules read. Without the two config keys the
# rule has no inputs it could run on, so it is only defined when both are given; an
# ordinary run therefore never tries to rebuild the resources.

RESOURCE_FILES = {
    "genes": "resources/annotation/genes.tsv.gz",
    "go_bp": "resources/genesets/go_bp.gmt.gz",
    "curated": "resources/genesets/curated_trd.gmt",
}

if config.get("orgdb_sqlite") and config.get("godb_sqlite"):

    rule build_resources:
        input:
            orgdb=config["orgdb_sqlite"],
            godb=config["godb_sqlite"],
        output:
            **RESOURCE_FILES,
        log:
            "logs/build_resources/build_resources.log",
        conda:
            "../envs/trdpipe.yml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            "../scripts/build_resources.py"

else:

    rule build_resources:
        log:
            "logs/build_resources/build_resources.log",
        run:
            raise ValueError(
                "build_resources needs the two Bioconductor SQLite files: "
                "snakemake --cores 1 -f build_resources --config orgdb_sqlite=.../org.Hs.eg.sqlite "
                "godb_sqlite=.../GO.sqlite (see resources/annotation/README.md)"
            )


# The blood cell-type markers (resources/cells/README.md) need only the annotation. The rule
# writes under results/, never over the shipped file that other rules read, so an ordinary
# run cannot rebuild it; tests/test_cells.py checks that the two are identical.
rule build_cell_markers:
    input:
        annotation=shipped_path("resources/annotation/genes.tsv.gz", WORKFLOW_TOP),
    output:
        gmt="results/resources/blood_cell_markers.gmt",
    log:
        "logs/build_cell_markers/build_cell_markers.log",
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/build_cell_markers.py"


# The human miRNA annotation (resources/annotation/README.md, "miRNA annotation"): miRBase 22's
# hsa.gff3 and its families (miFam.dat, or PyOBO's mirbase.family.obo). Like build_resources it is
# only defined when both inputs are given, so an ordinary run never rebuilds the shipped file.
#
#   snakemake --cores 1 -f build_mirna_annotation --config \
#       mirbase_gff3=/path/to/hsa.gff3 mirbase_families=/path/to/mirbase.family.obo
if config.get("mirbase_gff3") and config.get("mirbase_families"):

    rule build_mirna_annotation:
        input:
            gff3=config["mirbase_gff3"],
            families=config["mirbase_families"],
        output:
            mirna="resources/annotation/mirna.tsv.gz",
        log:
            "logs/build_resources/build_mirna_annotation.log",
        conda:
            "../envs/trdpipe.yml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=5,
        script:
            "../scripts/build_mirna_annotation.py"

else:

    rule build_mirna_annotation:
        log:
            "logs/build_resources/build_mirna_annotation.log",
        run:
            raise ValueError(
                "build_mirna_annotation needs miRBase's hsa.gff3 and its families: snakemake --cores 1 -f "
                "build_mirna_annotation --config mirbase_gff3=.../hsa.gff3 "
                "mirbase_families=.../miFam.dat (see resources/annotation/README.md)"
            )
