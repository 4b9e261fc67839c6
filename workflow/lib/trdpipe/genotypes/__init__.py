"""Genotypes of candidate genes: the variant list, the genotype file's reading and checks
(``variants``, ``reading``), the candidate-gene eQTL (``eqtl``), each variant's association with a
contrast (``association``) and their figures (``figures``)."""
