"""docs/configuration.md's key tables are generated from the models: the page can never
drift from what the application file accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from streamboot.config.models import AppSettings
from streamboot.config.reference import SECTIONS, render, rows

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_page_is_what_the_models_render() -> None:
    page = PAGE.read_text()
    assert render(page) == page, (
        "docs/configuration.md is stale: run `python -m streamboot.config.reference --write "
        "docs/configuration.md`")


def test_every_section_of_the_file_has_its_table() -> None:
    page = PAGE.read_text()
    assert set(AppSettings.model_fields) == {s.split(".")[0] for s in SECTIONS}
    for section in SECTIONS:
        assert f"<!-- generated: {section} -->" in page


def test_a_key_without_a_description_is_refused() -> None:
    class Undocumented(BaseModel):
        model_config = ConfigDict(use_attribute_docstrings=True)
        documented: int = 1
        """says what it is"""
        silent: int = 2

    with pytest.raises(ValueError, match=r"Undocumented\.silent has no description"):
        rows(Undocumented)


def test_nested_keys_and_defaults_read_as_in_yaml() -> None:
    found = {row.key: row for row in rows(SECTIONS["listeners.<name>"])}
    assert found["`retry.backoff`"].default == "`1s`"
    assert found["`rotation`"].type == "section"
    assert found["`rotation.key_format`"].default == "required"
    assert found["`publish.backpressure.mode`"].type == "`raise` \\| `wait`"
    assert found["`batch_size`"].default == "`container.batch_size`"
