"""The parameter reference: every key of params.yaml has a meaning beside its field, and docs/parameters.md
shows the table generated from them (the README links it)."""

from __future__ import annotations

import yaml

from faceres.config.reference import README_END, README_START, field_docs, leaf_docs, reference_markdown
from tests.conftest import REPO


def _params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_every_leaf_key_of_params_yaml_is_documented():
    docs = leaf_docs(_params())
    assert len(docs) > 100  # the walk reached the leaves: 109 keys today
    assert [key for key, doc in docs.items() if not doc] == []
    assert docs["profiles.paper.batch"].startswith("the global batch")
    assert docs["ablations.arms.skips0.skips"] == "the arm's skip connections (null: the base's)"
    assert docs["external.gfpgan"].startswith("other methods' restorations")


def test_field_docs_are_read_from_the_schema_and_an_undocumented_key_shows_up():
    assert field_docs()[("TrainConfig", "lr")] == "Adam learning rate of G and D (appendix A: 2.5e-3)"
    params = _params()
    params["train"]["unknown_key"] = 1  # not a field: no meaning (config loading rejects it anyway)
    assert leaf_docs(params)["train.unknown_key"] is None


def test_docs_parameters_shows_the_generated_reference_and_the_readme_links_it():
    reference = (REPO / "docs" / "parameters.md").read_text()
    start, end = reference.index(README_START) + len(README_START), reference.index(README_END)
    assert reference[start:end].strip() == reference_markdown(_params()), (
        "docs/parameters.md is out of date: paste the output of `faceres config --reference` between its markers")
    assert "| `profiles.<profile>.batch` | cpu `8`, gpu `16`, study `8`, paper `32` |" in reference
    assert "`docs/parameters.md`" in (REPO / "README.md").read_text()
