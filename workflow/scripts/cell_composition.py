"""Rule cell_composition: per-sample blood cell-type scores from the VST data, by
group and against the PCs. The work is done in trdpipe.cells.composition, the figure is
drawn by trdpipe.cells.figures."""

import logging
from pathlib import Path

import anndata as ad
import pandas as pd

from trdpipe.cells.composition import composition, score_pc_table
from trdpipe.cells.figures import scores_figure
from trdpipe.cells.scores import scores_by_group
from trdpipe.common import run_script, save_figure, write_table

log = logging.getLogger("trd")


def main(smk) -> None:
    vst = ad.read_h5ad(smk.input.vst)
    settings = dict(smk.params.cells)
    result = composition(vst, settings, int(smk.params.seed), smk.params.design)
    scores = result["scores"]
    write_table(result["markers"], smk.output.markers)
    write_table(scores.rename_axis("sample_id"), smk.output.scores, index=True, float_format="%.6g")
    write_table(
        result["covariates"].rename_axis("sample_id"), smk.output.covariates, index=True, float_format="%.6g"
    )
    write_table(pd.DataFrame([result["choice"]]), smk.output.choice, float_format="%.6g")
    association = score_pc_table(vst, scores, int(smk.params.n_top_genes), int(smk.params.n_pcs))
    write_table(association, smk.output.association, float_format="%.6g")
    contrasts = dict(smk.params.contrasts)
    for table_path, figure_path in zip(smk.output.by_group, smk.output.figures):
        contrast = contrasts[Path(table_path).parent.name]
        by_group = scores_by_group(scores, vst.obs, contrast)
        log.info("%s scores by group:\n%s", Path(table_path).parent.name, by_group.to_string(index=False))
        write_table(by_group, table_path, float_format="%.6g")
        save_figure(scores_figure(scores, vst.obs, contrast, by_group), figure_path)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
