"""Page function: study-format and rich JSON round trips, every validation rule, lookup, interpolation."""

import json

import numpy as np
import pytest

from manganime_ext.data import page_function as pfm
from manganime_ext.data.page_function import PageFunction, PageFunctionError


def make(**kw) -> PageFunction:
    args = dict(episode="ep", num_frames=100, first_page=10, boundaries=[19, 49, 89],
                provenance=["hand", "proposed", "hand"], exclusions=[(90, 100)])
    args.update(kw)
    return PageFunction(**args)


def test_study_round_trip(tmp_path):
    pf = pfm.from_study_tags([19, 100, 89], "ep", 100, 10, exclusions=[(90, 100)])
    assert pf.provenance == ["hand", None, "hand"] and pf.page_range == (10, 13)
    path = tmp_path / "tags.json"
    pfm.save_study_tags(str(path), pf)
    assert json.loads(path.read_text()) == [19, 100, 89]
    assert pfm.load_study_tags(str(path), "ep", 100, 10, [(90, 100)]) == pf


def test_rich_round_trip(tmp_path):
    pf = make()
    path = tmp_path / "pf.json"
    pfm.save(str(path), pf)
    assert pfm.load(str(path)) == pf
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pf.json"], "atomic write leaves no temp file"


@pytest.mark.parametrize("change, field", [
    (dict(num_frames=0), "num_frames"),
    (dict(first_page=-1), "first_page"),
    (dict(boundaries=[], provenance=[]), "boundaries"),
    (dict(boundaries=[19, 49.5, 89]), "boundaries"),
    (dict(boundaries=[19, 101, 89]), r"boundaries\[1\]"),
    (dict(boundaries=[49, 19, 89]), r"boundaries\[1\].*monotonic"),
    (dict(provenance=["hand"]), "provenance"),
    (dict(provenance=["hand", "guess", "hand"]), r"provenance\[1\]"),
    (dict(provenance=["hand", None, "hand"]), r"provenance\[1\]"),
    (dict(exclusions=[(90, 101)]), r"exclusions\[0\]"),
    (dict(exclusions=[(50, 50), (90, 100)]), r"exclusions\[0\]"),
    (dict(exclusions=[(90, 100), (80, 85)]), r"exclusions\[1\]"),
    (dict(exclusions=[]), r"boundaries\[2\].*supported"),
])
def test_validation_errors(change, field):
    with pytest.raises(PageFunctionError, match=field) as e:
        pfm.validate(make(**change))
    assert "\n" not in str(e.value)


def test_json_field_errors():
    d = pfm.to_json(make())
    with pytest.raises(PageFunctionError, match="unknown fields \\['pages'\\]"):
        pfm.from_json(dict(d, pages=3))
    with pytest.raises(PageFunctionError, match="missing fields \\['exclusions'\\]"):
        pfm.from_json({k: v for k, v in d.items() if k != "exclusions"})
    with pytest.raises(PageFunctionError, match="exclusions"):
        pfm.from_json(dict(d, exclusions=[5]))


def test_load_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(PageFunctionError, match="bad.json"):
        pfm.load(str(bad))
    bad.write_text("{}")
    with pytest.raises(PageFunctionError, match="list"):
        pfm.load_study_tags(str(bad), "ep", 10, 0)


def test_page_lookup():
    pf = make(exclusions=[(0, 5), (90, 100)])
    pages = pfm.pages_of_frames(pf, [0, 5, 19, 20, 49, 50, 89, 90, 99, 100, -1])
    assert list(pages) == [-1, 10, 10, 11, 11, 12, 12, -1, -1, -1, -1]


def test_interpolation_guess():
    assert list(pfm.interpolate_untagged([100, 100, 59, 100], 100)) == [19, 39, 59, 99]
    assert list(pfm.interpolate_untagged([9, 100, 29], 100)) == [9, 19, 29]
    pf = make(boundaries=[100, 49, 89], provenance=[None, "hand", "hand"])
    assert pfm.pages_of_frames(pf, [24, 25])[0] == 10 and pfm.pages_of_frames(pf, [25])[0] == 11
    guess = pfm.interpolate_untagged(np.array([100] * 5), 100)
    assert np.all(np.diff(guess) > 0) and guess[-1] == 99


def test_interpolation_guess_skips_exclusions():
    """Intro and outro frames get no page, and the untagged pages share the remaining frames evenly."""
    pf = make(first_page=0, boundaries=[100] * 3, provenance=[None] * 3, exclusions=[(0, 20), (90, 100)])
    pages = pfm.pages_of_frames(pf, np.arange(100))
    assert (pages[:20] == -1).all() and (pages[90:] == -1).all()
    assert list(np.bincount(pages[pages >= 0])) == [23, 24, 23]            # 70 supported frames, 3 pages
    assert list(pfm.interpolate_untagged(pf.boundaries, 100, pf.exclusions)) == [42, 66, 89]
    # A recap excluded mid-episode, after a tagged page: the two guessed pages split the 50 frames left.
    recap = make(first_page=0, boundaries=[29, 100, 100], provenance=["hand", None, None],
                 exclusions=[(0, 10), (40, 60)])
    pages = pfm.pages_of_frames(recap, np.arange(100))
    assert list(np.bincount(pages[pages >= 0])) == [20, 25, 25]
    assert (pages[40:60] == -1).all() and (pages[:10] == -1).all()
    nothing_supported = pfm.interpolate_untagged([100, 100], 100, [(0, 100)])
    assert list(nothing_supported) == [49, 99]
