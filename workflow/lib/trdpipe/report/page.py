"""One self-contained HTML report built from the result tables and figures (no analysis is re-run).

Everything is inline (CSS, JavaScript, figures as base64 PNG), so the file opens from a
USB stick with no network. The page is a list of sections: each is a module of
trdpipe.report.sections whose build(run) returns what its template part,
workflow/report/sections/<name>.html.j2, shows (None: not in this run); the report rule names
them in page order.
"""

import importlib
from datetime import UTC, datetime
from pathlib import Path

import jinja2
from markupsafe import Markup

from trdpipe.report.figures import plotly_library
from trdpipe.report.inputs import Run
from trdpipe.report.sections.de import describe_contrast
from trdpipe.report.sections.provenance import version_label
from trdpipe.report.text import TEMPLATE_FILTERS


def section(name: str, run: Run) -> dict | None:
    """One section's values, with the template part that shows them."""
    values = importlib.import_module(f"trdpipe.report.sections.{name}").build(run)
    return None if values is None else {**values, "name": name, "template": f"sections/{name}.html.j2"}


def report_context(run: Run, sections: list[str]) -> dict:
    """Everything the page shows: the run's heading values and its sections, in page order."""
    built = [section(name, run) for name in sections]
    return {
        "title": run.config["report"]["title"],
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "pipeline_version": version_label(run.software["workflow"]),
        "n_samples": run.cohort.n_obs,
        "contrasts": [
            {"name": name, "description": describe_contrast(run.contrasts[name], model)}
            for name, model in run.models.items()
        ],
        "sections": [s for s in built if s is not None],
        **interactive_scripts(run.template_dir),
    }


def interactive_scripts(template_dir) -> dict:
    """Plotly's library (once per page) and the volcano's search box, inline like the rest."""
    return {
        "plotly_js": Markup(plotly_library()),
        "volcano_js": Markup((Path(template_dir) / "volcano.js").read_text(encoding="utf-8")),
    }


def template_environment(template_dir) -> jinja2.Environment:
    """The page's templates, with the report's number and word formatting as filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(template_dir)), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters.update(TEMPLATE_FILTERS)
    return env


def render_page(context: dict, template_dir) -> str:
    template_dir = Path(template_dir)
    return (
        template_environment(template_dir)
        .get_template("report.html.j2")
        .render(
            css=Markup((template_dir / "report.css").read_text(encoding="utf-8")),
            js=Markup((template_dir / "report.js").read_text(encoding="utf-8")),
            **context,
        )
    )
