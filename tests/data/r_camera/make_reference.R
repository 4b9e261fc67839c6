# Reference for tests/test_camera.py: R limma's camera() on the toy cohort, with the inter-gene
# correlation estimated per set (inter.gene.cor = NA) and with limma's preset 0.01.
# Run from the repository root: Rscript tests/data/r_camera/make_reference.R
# (R 4.2.2, limma 3.54.1 from Debian's r-bioc-limma). Writes camera.tsv next to this script.
#
# Expression: voom's log-CPM without its weights, log2((count + 0.5) / (library size + 1) * 1e6),
# of the toy's genes with a mean count of at least 10, all 48 samples; the test computes the same
# matrix from the same files. Sets: GO BP and curated_TRD (resources/genesets/), symbols mapped to
# the toy's genes by truth_genes.tsv, 10 to 500 genes present. Design ~ site + sex + age + group
# (responder the reference level), contrast its last coefficient, groupTRD.
suppressMessages(library(limma))
out <- "tests/data/r_camera"
counts <- as.matrix(read.delim(gzfile("resources/toy/counts.tsv.gz"), row.names = 1, check.names = FALSE))
counts <- counts[rowMeans(counts) >= 10, ]
y <- log2(t((t(counts) + 0.5) / (colSums(counts) + 1)) * 1e6)
samples <- read.delim("resources/toy/samples.tsv", row.names = 1)[colnames(counts), ]
samples$group <- factor(samples$group, levels = c("responder", "TRD"))
design <- model.matrix(~ site + sex + age + group, samples)

symbols <- read.delim("resources/toy/truth_genes.tsv")
symbol_of <- setNames(symbols$gene_symbol, symbols$gene_id)[rownames(y)]
read_gmt <- function(path) {
  connection <- gzfile(path) # reads plain files too
  on.exit(close(connection))
  lines <- strsplit(readLines(connection), "\t")
  setNames(lapply(lines, function(fields) fields[-(1:2)]), vapply(lines, `[`, "", 1))
}
sets <- c(read_gmt("resources/genesets/go_bp.gmt.gz"), read_gmt("resources/genesets/curated_trd.gmt"))
index <- lapply(sets, function(genes) which(symbol_of %in% genes))
index <- index[lengths(index) >= 10 & lengths(index) <= 500]

estimated <- camera(y, index, design, contrast = ncol(design), inter.gene.cor = NA, sort = FALSE)
preset <- camera(y, index, design, contrast = ncol(design), sort = FALSE)
reference <- data.frame(
  term = names(index),
  n_genes = estimated$NGenes,
  correlation = signif(estimated$Correlation, 8),
  direction = estimated$Direction,
  pvalue = signif(estimated$PValue, 8),
  direction_preset = preset$Direction,
  pvalue_preset = signif(preset$PValue, 8)
)
write.table(reference, file.path(out, "camera.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
