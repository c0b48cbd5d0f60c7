"""The model catalogue."""

import pytest

from orchestrator.errors import CatalogueError
from orchestrator.models import catalogue


def test_parameter_counts_match_the_published_ones():
    entries = catalogue.load()
    assert entries, "the catalogue is empty"
    for entry in (e for e in entries.values() if e.synthetic):
        assert entry.published_parameters, f"{entry.id} has no published parameter count"
        computed = catalogue.parameter_count(entry.architecture)
        assert abs(computed - entry.published_parameters) <= entry.published_rounding // 2, (entry.id, computed)


def test_exact_published_counts():
    expected = {"tinystories-15m": 15_191_712, "tinystories-42m": 41_689_600, "smollm2-135m": 134_515_008,
                "tinyllama-1.1b": 1_100_048_384}
    for model_id, count in expected.items():
        assert catalogue.parameter_count(catalogue.get(model_id).architecture) == count
    assert round(catalogue.parameter_count(catalogue.get("tinystories-110m").architecture) / 1e6, 2) == 109.53


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
