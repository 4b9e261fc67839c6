# Reference for tests/test_genotypes.py: R's lm (the eQTL) and glm (the association) on a small
# simulated cohort (data.tsv: 160 samples, written once with numpy, seed 27).
# Run from the repository root: Rscript tests/data/r_genotypes/make_reference.R (R 4.2.2, stats).
# Writes reference.tsv next to this script: the dosage's coefficient, SE and p-value of each model.
out <- "tests/data/r_genotypes"
data <- read.delim(file.path(out, "data.tsv"))
data$group <- factor(data$group, levels = c("responder", "TRD"))
eqtl <- coef(summary(lm(expression ~ site + sex + age + group + dosage, data)))["dosage", ]
association <- coef(summary(glm(group ~ site + sex + age + risk, binomial, data)))["risk", ]
reference <- data.frame(
  model = c("eqtl", "association"),
  estimate = c(eqtl[1], association[1]),
  se = c(eqtl[2], association[2]),
  pvalue = c(eqtl[4], association[4])
)
write.table(format(reference, digits = 15), file.path(out, "reference.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
