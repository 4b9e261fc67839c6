# Reference for tests/test_limma_voom.py: R limma's voom, lmFit and eBayes on the toy cohort.
# Run from the repository root: Rscript tests/data/r_limma_voom/make_reference.R
# (R 4.2.2, limma 3.54.1 from Debian's r-bioc-limma). Writes results.tsv.gz next to this script.
#
# Counts: the toy's genes with a mean count of at least 100 (3,677 genes: pylimma's lmFit
# fits voom-weighted genes one at a time), all 48 samples, library sizes the
# column sums (voom's default, no TMM). Design ~ site + sex + age + group (responder the reference
# level); the contrast is its last coefficient, groupTRD. lfcSE is the moderated standard error,
# sqrt(s2.post) * stdev.unscaled, as the engine writes it.
suppressMessages(library(limma))
out <- "tests/data/r_limma_voom"
counts <- as.matrix(read.delim(gzfile("resources/toy/counts.tsv.gz"), row.names = 1, check.names = FALSE))
counts <- counts[rowMeans(counts) >= 100, ]
samples <- read.delim("resources/toy/samples.tsv", row.names = 1)[colnames(counts), ]
samples$group <- factor(samples$group, levels = c("responder", "TRD"))
design <- model.matrix(~ site + sex + age + group, samples)

fit <- eBayes(lmFit(voom(counts, design), design))
coef <- ncol(design)
table <- topTable(fit, coef = coef, number = Inf, sort.by = "none")
reference <- data.frame(
  gene_id = rownames(table),
  log2FoldChange = signif(table$logFC, 10),
  lfcSE = signif(sqrt(fit$s2.post) * fit$stdev.unscaled[, coef], 10),
  stat = signif(table$t, 10),
  pvalue = signif(table$P.Value, 10),
  padj = signif(table$adj.P.Val, 10)
)
connection <- gzfile(file.path(out, "results.tsv.gz"), "w")
write.table(reference, connection, sep = "\t", quote = FALSE, row.names = FALSE)
close(connection)
