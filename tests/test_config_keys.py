"""The config keys each rule receives come from one declaration (trdpipe.checks.config_keys): every
key of a section that rules read in part is in a group, and the rules name only declared groups."""

import re

import yaml

from conftest import ROOT
from trdpipe.checks.config_keys import KEY_GROUPS, section_settings

SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
RULES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))


def schema_keys(section: str) -> set[str]:
    return set(SCHEMA["properties"][section]["properties"])


def grouped_keys(section: str) -> set[str]:
    return {key for keys in KEY_GROUPS[section].values() for key in keys}


def test_every_key_of_a_split_section_is_in_a_group():
    ungrouped = {section: sorted(schema_keys(section) - grouped_keys(section)) for section in KEY_GROUPS}
    assert {section: keys for section, keys in ungrouped.items() if keys} == {}, (
        "schema keys in no group of trdpipe.checks.config_keys.KEY_GROUPS: no rule would receive them"
    )


def test_every_grouped_key_is_a_schema_key():
    unknown = {section: sorted(grouped_keys(section) - schema_keys(section)) for section in KEY_GROUPS}
    assert {section: keys for section, keys in unknown.items() if keys} == {}


def test_the_rules_name_declared_groups_only():
    named = {
        (path.name, group)
        for path in RULES
        for call in re.findall(r"de_settings\(([^)]*)\)", path.read_text())
        for group in re.findall(r'"(\w+)"', call)
    }
    assert sorted((rule, group) for rule, group in named if group not in KEY_GROUPS["de"]) == []
    # and no group is left that no rule reads
    assert {group for _, group in named} == set(KEY_GROUPS["de"])


def test_section_settings_take_the_groups_keys_in_order_once():
    config = {"de": {"alpha": 0.05, "lfc_thresholds": [0.5, 1.0], "lfc_shrink": True, "vst_nsub": 0}}
    settings = section_settings(config, "de", "calls", "de_table")
    assert settings == {"alpha": 0.05, "lfc_thresholds": [0.5, 1.0], "lfc_shrink": True}
    assert list(settings) == ["alpha", "lfc_thresholds", "lfc_shrink"]
