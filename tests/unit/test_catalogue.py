"""The model catalogue."""

import pytest

from orchestrator import catalogue
from orchestrator.errors import CatalogueError


def test_parameter_counts_match_the_published_ones():
    entries = catalogue.load()
    assert entries, "the catalogue is empty"
    for entry in entries.values():
        assert entry.published_parameters, f"{entry.id} has no published parameter count"
        assert catalogue.parameter_count(entry.architecture) == entry.published_parameters, entry.id


def test_stories15m_shapes():
    arch = catalogue.get("tinystories-15m").architecture
    assert (arch["hidden_size"], arch["num_layers"], arch["num_heads"], arch["ffn_size"], arch["vocab_size"],
            arch["context_length"], arch["tied_output"]) == (288, 6, 6, 768, 32000, 256, True)
    assert catalogue.parameter_count(arch) == 15_191_712


def test_recipe_hash_changes_with_the_recipe():
    entry = catalogue.get("tinystories-15m")
    assert entry.recipe_hash() == catalogue.get("tinystories-15m").recipe_hash()
    from dataclasses import replace

    assert replace(entry, seed=entry.seed + 1).recipe_hash() != entry.recipe_hash()


def test_unknown_model_names_the_known_ones():
    with pytest.raises(CatalogueError, match="tinystories-15m"):
        catalogue.get("nope")


def test_invalid_catalogue_is_reported(tmp_path):
    bad = tmp_path / "models.yaml"
    bad.write_text("version: 1\nmodels: [{id: X}]\n")
    with pytest.raises(CatalogueError, match="is invalid"):
        catalogue.load.__wrapped__(bad)
