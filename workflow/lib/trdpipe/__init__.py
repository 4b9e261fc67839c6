"""The pipeline's engine: everything the rule scripts of workflow/scripts/ call.

Subpackages by concern, each importing only from the ones listed before it:

- ``common``: logging, atomic outputs, the one-line error of a rule (no pipeline imports);
- ``checks``: the config check and the input checks that stop a run before any fitting;
- ``io``: count formats, the sample sheet, gene identifiers and annotation, gene sets;
- ``model``: the design, PyDESeq2 fits (through ``batched_deseq2``), filtering, VST, tables,
  sensitivity models;
- ``qc``, ``cells``, ``calibration``, ``enrichment``, ``genotypes``, ``predict``: one concern each;
- ``report``: the HTML report and its figures;
- ``provenance``, ``resources``, ``simulate_layers``, ``simulate``: software versions and MultiQC,
  the builders of resources/, the simulated cohort's small-RNA, genotype and score layers, the
  cohort simulator.

A concern's figures are in its ``figures`` module (``model.figures``, ``qc.figures``, ...), beside
its computation, which never imports them. Nothing here imports the rule scripts, and
``batched_deseq2`` imports nothing from here.
"""
