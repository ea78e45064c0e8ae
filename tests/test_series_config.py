"""Series config: loading, one-line errors naming the field, check's summary, --shard."""

import json

import pytest
from click.testing import CliRunner

from manganime_ext.data import page_function
from manganime_ext.cli.export import check
from manganime_ext.data.series_config import SeriesConfigError, load
from manganime_ext.io.outputs import ShardError, parse_shard, select_shard


def write_series_config(folder, series, truth, stores) -> str:
    """A config for the tiny series, page functions from the ground truth; returns its path."""
    folder.mkdir(exist_ok=True)
    episodes = []
    for ep in truth["episodes"]:
        name = ep["file"].split("/")[-1][:-4]
        exclusions = [r for r in (ep["intro"], ep["outro"]) if r[0] < r[1]]
        pf = page_function.from_study_tags(ep["boundaries"], name, ep["frames"], ep["page_range"][0], exclusions)
        page_function.save(str(folder / f"{name}.json"), pf)
        episodes.append(dict(name=name, video=str(series / ep["file"]), store=str(stores / name), volume="vol",
                             page_range=ep["page_range"], page_function=f"{name}.json", exclusions=exclusions))
    path = folder / "series.json"
    path.write_text(json.dumps(dict(volumes=[dict(name="vol", pages=str(series / "manga"))], episodes=episodes)))
    return str(path)


@pytest.fixture(scope="module")
def config(tiny_series, tiny_stores, tmp_path_factory):
    series, truth = tiny_series
    return write_series_config(tmp_path_factory.mktemp("cfg"), series, truth, tiny_stores)


def edited(config, tmp_path, edit) -> str:
    """A copy of the config (beside the page function files) changed by ``edit(dict)``."""
    d = json.loads(open(config).read())
    edit(d)
    path = config.replace("series.json", f"edited-{tmp_path.name}.json")
    with open(path, "w") as f:
        json.dump(d, f)
    return path


def test_load_and_check_summary(config, tiny_series):
    _, truth = tiny_series
    s = load(config)
    assert [e.name for e in s.episodes] == ["ep000", "ep001"] and len(s.volumes["vol"].pages) == truth["pages"]
    result = CliRunner().invoke(check, ["--series", config])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    ep0 = truth["episodes"][0]
    supported0 = ep0["outro"][0] - ep0["intro"][1]
    assert lines[1].split()[:5] == ["ep000", str(ep0["frames"]), str(supported0),
                                    str(ep0["page_range"][1] - ep0["page_range"][0]), "100.0%"]
    assert lines[-1].startswith("total (2 ep.)") and str(sum(e["frames"] for e in truth["episodes"])) in lines[-1]
    sharded = CliRunner().invoke(check, ["--series", config, "--shard", "1/2"])
    assert sharded.exit_code == 0 and [ln.split()[0] for ln in sharded.output.splitlines()[1:-1]] == ["ep001"]


def test_untagged_episode_checks_with_zero_tagged(config, tmp_path):
    path = edited(config, tmp_path, lambda d: d["episodes"][0].pop("page_function"))
    result = CliRunner().invoke(check, ["--series", path])
    assert result.exit_code == 0, result.output
    row = result.output.splitlines()[1].split()
    assert row[4] == "0.0%"
    low, high = int(row[6]), int(row[7])       # guessed pages share the supported frames, intro/outro left out
    assert high - low <= 1, result.output


def _set(*keys, value):
    def edit(d):
        target = d
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (_set("episodes", 0, "colour", value=1), "episodes[0]: unknown field(s) ['colour']"),
    (lambda d: d["episodes"][1].pop("store"), "episodes[1]: missing field(s) ['store']"),
    (_set("episodes", 0, "page_range", value=[0, 999]), "episodes[0].page_range: [0, 999) is not a page range"),
    (_set("episodes", 0, "page_range", value=[3, 3]), "episodes[0].page_range: [3, 3) is not a page range"),
    (_set("episodes", 0, "pages", value=[0, 2]), "episodes[0]: give the episode's pages as page_range"),
    (lambda d: d["episodes"][0].pop("page_range"), "episodes[0]: give the episode's pages as page_range"),
    (_set("episodes", 0, "volume", value="nope"), "episodes[0].volume: 'nope' is not one of"),
    (_set("episodes", 1, "exclusions", value=[[0, 10], [90, 5000]]),
     "episodes[1].exclusions[1]: [90, 5000) reaches past"),
    (_set("episodes", 0, "exclusions", value=[[10, 5]]), "episodes[0].exclusions[0]: [10, 5) is empty"),
    (_set("episodes", 0, "store", value="missing-store"), "episodes[0].store:"),
    (_set("volumes", 0, "pages", value="no-such-folder"), "volumes[0].pages:"),
    (_set("episodes", 1, "name", value="ep000"), "episodes[1].name: 'ep000' is used twice"),
    (_set("episodes", 0, "store", value=7), "episodes[0].store: expected a non-empty string, got 7"),
    (_set("volumes", value={}), "volumes: expected a JSON list"),
])
def test_bad_config_one_line(config, tmp_path, edit, message):
    path = edited(config, tmp_path, edit)
    result = CliRunner().invoke(check, ["--series", path])
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_non_monotonic_page_function(config, tmp_path):
    pf_path = config.replace("series.json", "ep000.json")
    d = json.loads(open(pf_path).read())
    d["boundaries"][1], d["boundaries"][2] = d["boundaries"][2], d["boundaries"][1]
    bad = tmp_path / "bad_pf.json"
    bad.write_text(json.dumps(d))
    path = edited(config, tmp_path, _set("episodes", 0, "page_function", value=str(bad)))
    result = CliRunner().invoke(check, ["--series", path])
    assert result.exit_code == 1 and "episodes[0].page_function" in result.output and "monotonic" in result.output


def test_unreadable_config(tmp_path):
    bad = tmp_path / "s.json"
    bad.write_text("{not json")
    with pytest.raises(SeriesConfigError, match="cannot read JSON"):
        load(str(bad))


def test_shards_partition_the_series():
    items = list(range(10))
    parts = [select_shard(items, parse_shard(f"{i}/3")) for i in range(3)]
    assert parts[1] == [1, 4, 7] and sorted(sum(parts, [])) == items
    assert select_shard(items, parse_shard(None)) == items
    for text in ["3/3", "a/2", "1", "-1/2"]:
        with pytest.raises(ShardError, match="--shard"):
            parse_shard(text)


def test_page_range_is_half_open_and_old_inclusive_pages_still_read(config, tiny_series, tmp_path):
    """page_range [first, stop) as in ground_truth.json; an older config's pages [first, last] means the same."""
    _, truth = tiny_series
    ranges = [tuple(ep["page_range"]) for ep in truth["episodes"]]
    assert [ep.page_range for ep in load(config).episodes] == ranges

    def to_old_form(d):
        for ep in d["episodes"]:
            first, stop = ep.pop("page_range")
            ep["pages"] = [first, stop - 1]
    old = edited(config, tmp_path, to_old_form)
    assert [ep.page_range for ep in load(old).episodes] == ranges
    result = CliRunner().invoke(check, ["--series", old])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split()[3] == str(ranges[0][1] - ranges[0][0])
    shifted = edited(config, tmp_path, _set("episodes", 0, "page_range", value=[ranges[0][0], ranges[0][1] - 1]))
    result = CliRunner().invoke(check, ["--series", shifted])
    assert result.exit_code == 1 and f"covers pages [{ranges[0][0]}, {ranges[0][1]}), the config says " \
        f"[{ranges[0][0]}, {ranges[0][1] - 1})" in result.output, result.output
