"""PyDESeq2 with a vectorised backend: the gene-wise fits of many genes at once.

Independent of the pipeline (it needs PyDESeq2, NumPy, SciPy and numba only), in the shape in
which it could be offered to PyDESeq2:

- ``inference.BatchedInference``: a ``pydeseq2.inference.Inference`` whose methods fit blocks of
  genes together on threads (IRLS, dispersion MLE and MAP, Wald test, LFC shrinkage);
- ``dds.BatchedDeseqDataSet`` and ``dds.BatchedDeseqStats``: PyDESeq2's ``DeseqDataSet`` and
  ``DeseqStats`` with their serial per-gene code vectorised (size factors, the dispersion trend,
  Cook's distances, independent filtering), the same results as PyDESeq2's own methods; and
  ``dds.WarmStarts``, which starts refits (label permutations) from an observed fit;
- ``numba_cache``: numba's cache of compiled kernels outside the source tree, never fatal.

Tests: tests/test_batched_inference.py, tests/test_batched_dds.py, tests/test_numba_cache.py.
Bench: bench/bench_deseq2.py.
"""
