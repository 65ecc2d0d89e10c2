"""Every artifact in results/ is valid against results/schema.json, has its .md, and the README cites only
artifacts that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = sorted((REPO / "results").glob("*.json"))
SCHEMA = json.loads((REPO / "results" / "schema.json").read_text())


def test_schema_is_a_valid_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", [p for p in RESULTS if p.name != "schema.json"], ids=lambda p: p.stem)
def test_artifact_matches_the_schema_and_has_a_report(path):
    jsonschema.validate(json.loads(path.read_text()), SCHEMA)
    assert path.with_suffix(".md").is_file(), f"{path.name} has no {path.stem}.md for people"


def test_schema_rejects_an_artifact_without_metadata():
    with pytest.raises(jsonschema.ValidationError, match="metadata"):
        jsonschema.validate({"benchmark": "scalar", "ours_steps_per_s": 1, "microgpt_steps_per_s": 1,
                             "speedup_vs_microgpt": 1}, SCHEMA)


def test_readme_cites_existing_artifacts():
    readme = (REPO / "README.md").read_text()
    cited = set(re.findall(r"results/[\w.-]+\.(?:md|json)", readme))
    assert cited, "the README cites no results"
    for name in cited:
        assert (REPO / name).is_file(), f"README cites {name}, which does not exist"
