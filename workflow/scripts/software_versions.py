"""Rule software_versions: results/software_versions.yml: the workflow's version and that of every
package it imports. The work is done in trdpipe.provenance.versions."""

import logging
from pathlib import Path

import yaml

from trdpipe.common import atomic_output, run_script
from trdpipe.provenance.versions import versions_document

log = logging.getLogger("trd")


def main(smk) -> None:
    scripts, engine = list(smk.input.scripts), list(smk.input.engine)
    # the workflow's own modules: the rule scripts and the engine's top-level packages
    local = {Path(p).stem for p in scripts} | {Path(p).relative_to(smk.params.lib).parts[0] for p in engine}
    document = versions_document(
        smk.input.version,
        [*scripts, *engine, *smk.input.rules],
        local,
        smk.input.config_files,
        source=smk.params.source,
    )
    log.info("workflow %s, %d packages", document["workflow"], len(document["packages"]))
    with atomic_output(smk.output.yml) as tmp:
        tmp.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
