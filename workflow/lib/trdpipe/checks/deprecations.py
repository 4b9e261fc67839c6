"""Config names that still work for one release after their rename, each with a line in the log."""

# old top-level section -> its new name (kept until the next minor release)
RENAMED_SECTIONS = {"deseq2": "de"}


def rename_deprecated_sections(config: dict) -> list[str]:
    """Move each deprecated section's keys into its new section (keys the new one gives win), in
    place, and say so: one log line per section renamed."""
    notes = []
    for old, new in RENAMED_SECTIONS.items():
        if old not in config:
            continue
        section = config.pop(old)
        config[new] = {**section, **config.get(new, {})} if isinstance(section, dict) else section
        notes.append(
            f"config: the section '{old}:' is deprecated and will be removed in the next release; "
            f"its keys were read as '{new}:' (rename it in your config)"
        )
    return notes
