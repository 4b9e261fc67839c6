"""A self-contained HTML report built from the result tables and figures (no analysis is re-run)."""

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from pipeline_common import atomic_output


def embed_png(path: str | Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(Path(path).name)}" src="data:image/png;base64,{data}">'


def html_table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, border=0, classes="table", float_format=lambda x: f"{x:.3g}")


def contrast_section(name: str, contrast: dict, design: str, alpha: float, table_path, volcano,
                     ma) -> str:
    table = pd.read_csv(table_path, sep="\t")
    significant = table["padj"] < alpha
    up = int((significant & (table["log2FoldChange"] > 0)).sum())
    down = int((significant & (table["log2FoldChange"] < 0)).sum())
    return (
        f"<h2>Differential expression: {html.escape(name)}</h2>"
        f"<p>{html.escape(contrast['test'])} vs {html.escape(contrast['reference'])} "
        f"(model <code>{html.escape(design)}</code>): <b>{up}</b> genes up and <b>{down}</b> down at "
        f"padj &lt; {alpha} of {table['padj'].notna().sum()} tested.</p>"
        f"<div class='figs'>{embed_png(volcano)}{embed_png(ma)}</div>"
        f"<h3>Top genes</h3>{html_table(table.head(30))}"
    )


def render_report(inputs, contrasts: dict, design: str, alpha: float) -> str:
    sections = [
        "<h2>Quality control</h2>",
        html_table(pd.read_csv(inputs.filter_summary, sep="\t")),
        embed_png(inputs.pca),
    ]
    for name, table, volcano, ma in zip(contrasts, inputs.tables, inputs.volcanos, inputs.mas):
        sections.append(contrast_section(name, contrasts[name], design, alpha, table, volcano, ma))
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>TRD differential expression"
        "</title><style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
        "img{max-width:48%}table{border-collapse:collapse;font-size:12px}"
        "td,th{padding:2px 6px;border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>TRD vs responder: differential expression report</h1><p>Created {created}.</p>"
        + "".join(sections)
        + "</body></html>"
    )


def main(smk) -> None:
    page = render_report(smk.input, dict(smk.params.contrasts), smk.params.design, smk.params.alpha)
    with atomic_output(smk.output.html) as tmp:
        tmp.write_text(page, encoding="utf-8")


if "snakemake" in globals():
    from pipeline_common import run_script

    run_script(main, snakemake)  # noqa: F821
