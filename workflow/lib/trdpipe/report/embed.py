"""Figures inline in the page: PNG as data URIs, captioned by workflow/report/<name>.rst."""

import base64
import io
import struct
from pathlib import Path

import jinja2

# A figure at least this much wider than tall (three-panel PCA, bar charts), or this wide in pixels
# (dot plots: two would not fit side by side), gets a row of its own.
WIDE_ASPECT = 1.5
WIDE_PIXELS = 900


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (the report's own figures are never written to disk)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def caption_text(rst: str, config: dict, values: dict | None = None) -> str:
    """A `snakemake --report` caption (workflow/report/<name>.rst) as plain text for the HTML report.

    The captions are Jinja templates over `snakemake.config`; rendering them here keeps
    one caption per figure for both reports. values: what the run's tables tell beyond the config
    (the number of PCs shown), which a caption uses when defined (Snakemake's report has only the config);
    its `assay_type` is the rule's param of that name (default the mRNA assay's), which captions shared
    by assays read for their wording.
    """
    values = values or {}
    params = {"assay_type": values.get("assay_type", "mrna")}
    text = jinja2.Template(rst).render(snakemake={"config": config, "params": params}, **values)
    return " ".join(text.replace("``", "").split())


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG header (IHDR is always the first chunk)."""
    return struct.unpack(">II", data[16:24])


def inline_png(data: bytes, caption: str) -> dict:
    """A figure for the template: shown at its own pixel size (the pipeline's figures are drawn at
    110 dpi, so their text is as large as the page's) or the page's width if smaller; a wide one
    (WIDE_ASPECT, WIDE_PIXELS) gets a row of its own."""
    width, height = png_size(data)
    return {
        "src": png_data_uri(data),
        "caption": caption,
        "width": width,
        "wide": width >= WIDE_ASPECT * height or width >= WIDE_PIXELS,
    }


def figure(path, caption_dir, config: dict, caption: str | None = None, values: dict | None = None) -> dict:
    """A PNG inline, captioned by workflow/report/<file name>.rst (rendered with `values`, caption_text)
    unless a caption is given."""
    if caption is None:
        rst = Path(caption_dir) / f"{Path(path).stem}.rst"
        caption = (
            caption_text(rst.read_text(encoding="utf-8"), config, values) if rst.exists() else Path(path).stem
        )
    return inline_png(Path(path).read_bytes(), caption)
