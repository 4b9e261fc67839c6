# Reference for tests/test_vst.py: R DESeq2's vst(blind = TRUE, nsub = 1000) on the toy cohort.
# Run from the repository root: Rscript tests/data/r_vst/make_reference.R
# (R 4.2.2, DESeq2 1.38.3 from Debian's r-bioc-deseq2). Writes, next to this script:
#   subset_genes.txt  the 1000 genes vst() fits its dispersion trend on (its own selection rule)
#   trend.tsv         the coefficients of that trend (asymptDisp = a0, extraPois = a1)
#   vst_genes.tsv     vst() values of every 100th gene (rows) for every sample (columns)
suppressMessages(library(DESeq2))
out <- "tests/data/r_vst"
counts <- as.matrix(read.delim(gzfile("resources/toy/counts.tsv.gz"), row.names = 1, check.names = FALSE))
dds <- DESeqDataSetFromMatrix(counts, data.frame(row.names = colnames(counts), x = rep(1, ncol(counts))), ~ 1)
vsd <- vst(dds, blind = TRUE, nsub = 1000)
keep <- seq(1, nrow(counts), by = 100)
write.table(round(assay(vsd)[keep, ], 6), file.path(out, "vst_genes.tsv"), sep = "\t", quote = FALSE,
            col.names = NA)
# the same trend, by vst()'s own steps, to record the gene subset and the coefficients
dds <- estimateSizeFactors(dds)
baseMean <- rowMeans(counts(dds, normalized = TRUE))
eligible <- dds[baseMean > 5, ]
o <- order(baseMean[baseMean > 5])
idx <- o[round(seq(from = 1, to = length(o), length = 1000))]
writeLines(rownames(eligible)[idx], file.path(out, "subset_genes.txt"))
fit <- estimateDispersionsFit(estimateDispersionsGeneEst(eligible[idx, ], quiet = TRUE), quiet = TRUE)
coefs <- attr(dispersionFunction(fit), "coefficients")
write.table(data.frame(coefficient = names(coefs), value = signif(unname(coefs), 8)),
            file.path(out, "trend.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
