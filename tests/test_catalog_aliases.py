"""Catalog aliases (retired ids served as their models) and per-model limits, as loaded."""

from __future__ import annotations

import pytest

from kinema.catalog import Catalog
from kinema.catalog_check import CatalogError
from kinema.errors import InvalidRequest

ENGINE = {"motion": {"kind": "motion", "fps": 24}}
EXTENSION = {"max_input_s": 30, "max_output_s": 37, "durations": [7]}
MODEL = {
    "dialect": "gemini",
    "engine": "motion",
    "inputs": "any",
    "durations": [4, 8],
    "default_duration": 8,
    "aspect_ratios": ["16:9"],
    "resolutions": ["720p"],
    "options": ["duration"],
    "reference_images": 2,
    "extension": EXTENSION,
}


def test_an_alias_is_its_models_spec_under_the_old_id():
    data = {"engines": ENGINE, "models": {"new": MODEL}, "aliases": {"old": {"of": "new"}}}
    catalog = Catalog.from_dict(data)
    old = catalog.get("old", dialect="gemini")
    assert (old.id, old.alias_of, old.engine) == ("old", "new", "motion")
    assert old.extension is not None and old.extension.durations == (7,)


def test_one_extension_adds_only_its_durations_and_references_stop_at_the_limit():
    catalog = Catalog.from_dict({"engines": ENGINE, "models": {"new": MODEL}})
    extended = catalog.build_request("new", {"video": "job:x#0"})
    assert extended.duration_s == 7
    with pytest.raises(InvalidRequest, match="7 seconds"):
        catalog.build_request("new", {"video": "job:x#0", "duration": 8})
    with pytest.raises(InvalidRequest, match=r"1 to 2 images \(the model's limit\), not 3"):
        catalog.build_request("new", {"prompt": "p", "reference_images": ["a", "b", "c"]})


@pytest.mark.parametrize(
    ("aliases", "models", "named"),
    [
        ({"old": {"of": "missing"}}, {"new": MODEL}, 'aliases."old"] of'),
        ({"old": {"of": "new", "typo": 1}}, {"new": MODEL}, 'aliases."old"] typo'),
        ({}, {"new": {**MODEL, "extension": {**EXTENSION, "durations": "7"}}}, "extension"),
        ({}, {"new": {**MODEL, "reference_images": 0}}, "reference_images"),
    ],
)
def test_a_bad_alias_or_limit_names_its_table_and_field(aliases, models, named):
    with pytest.raises(CatalogError, match=named.replace("[", r"\[").replace("]", r"\]")):
        Catalog.from_dict({"engines": ENGINE, "models": models, "aliases": aliases})
