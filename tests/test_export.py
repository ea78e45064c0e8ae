"""export: the official-format zip and the paired (frame, page, next frame) dataset, on the tiny series."""

import json
import os
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import dataset_tool_anime
from manganime_ext.data import page_function
from manganime_ext.cli.export import export_conditional, export_unconditional
from manganime_ext.data.export import load_cuts, pair_starts
from manganime_ext.io.frame_store import FrameStore
from manganime_ext.data.paired_dataset import PairedDatasetError, PairedFrameDataset
from stylegan2_ada.training.dataset import ImageFolderDataset
from test_series_config import edited, write_series_config


@pytest.fixture(scope="module")
def config(tiny_series, tiny_stores, tmp_path_factory):
    series, truth = tiny_series
    return write_series_config(tmp_path_factory.mktemp("cfg"), series, truth, tiny_stores)


def truth_pf(ep: dict) -> page_function.PageFunction:
    exclusions = [r for r in (ep["intro"], ep["outro"]) if r[0] < r[1]]
    return page_function.from_study_tags(ep["boundaries"], "ep", ep["frames"], ep["page_range"][0], exclusions)


def brute_force_pairs(ep: dict, stride: int, no_cross_cuts: bool):
    """(n, page) of every pair, straight from the ground truth's definitions."""
    excluded = {f for a, b in (ep["intro"], ep["outro"]) for f in range(a, b)}
    pairs = []
    for n in range(ep["frames"] - stride):
        if any(f in excluded for f in range(n, n + stride + 1)):
            continue
        if no_cross_cuts and any(n < c <= n + stride for c in ep["cuts"]):
            continue
        page = ep["page_range"][0] + next(i for i, b in enumerate(ep["boundaries"]) if n <= b)
        pairs.append((n, page))
    return pairs


def run(command, *args):
    return CliRunner().invoke(command, [str(a) for a in args])


@pytest.mark.parametrize("stride", [1, 2, 5])
@pytest.mark.parametrize("no_cross_cuts", [False, True])
def test_pair_starts_match_brute_force(tiny_series, stride, no_cross_cuts):
    _, truth = tiny_series
    for ep in truth["episodes"]:
        pf = truth_pf(ep)
        n = pair_starts(pf, stride, ep["cuts"], no_cross_cuts)
        expected = brute_force_pairs(ep, stride, no_cross_cuts)
        assert list(n) == [a for a, _ in expected]
        assert list(page_function.pages_of_frames(pf, n)) == [p for _, p in expected]


def test_skip_untagged_drops_untagged_pages(tiny_series):
    ep = tiny_series[1]["episodes"][0]
    pf = truth_pf(ep)
    pf.boundaries[1], pf.provenance[1] = pf.num_frames, None           # page 1 untagged: guessed
    guessed, skipped = pair_starts(pf), pair_starts(pf, skip_untagged=True)
    pages = page_function.pages_of_frames(pf, guessed)
    assert len(guessed) == len(pair_starts(truth_pf(ep)))
    assert list(skipped) == list(guessed[pages != pf.first_page + 1])


@pytest.fixture(scope="module")
def paired(config, tiny_series, tmp_path_factory):
    series, _ = tiny_series
    out = tmp_path_factory.mktemp("paired") / "paired.zip"
    result = run(export_conditional, "--series", config, "--out", out, "--val-episodes", "ep001",
                 "--cuts", series / "ground_truth.json", "--no-cross-cuts")
    assert result.exit_code == 0, result.output
    return out


def test_conditional_pairs_and_splits(paired, tiny_series, config, tmp_path):
    _, truth = tiny_series
    train, val = PairedFrameDataset(str(paired), "train"), PairedFrameDataset(str(paired), "val")
    names = train.episodes
    for ds, ep_names in [(train, {"ep000"}), (val, {"ep001"})]:
        assert {names[e] for e in ds.pairs[:, 0]} == ep_names                 # val holds only val episodes
    for e, ep in enumerate(truth["episodes"]):
        ds = train if e == 0 else val
        rows = ds.pairs[ds.pairs[:, 0] == e]
        assert [tuple(r) for r in rows[:, [1, 3]]] == brute_force_pairs(ep, 1, True)
        assert (rows[:, 2] == rows[:, 1] + 1).all()
        for a, b in (ep["intro"], ep["outro"]):                                  # never across an exclusion
            assert not ((rows[:, 1] < b) & (rows[:, 2] >= a)).any()
    with_cuts = tmp_path / "all.zip"
    assert run(export_conditional, "--series", config, "--out", with_cuts).exit_code == 0
    everything = PairedFrameDataset(str(with_cuts), "all")
    kept = {tuple(r) for r in PairedFrameDataset(str(paired), "all").pairs}
    dropped = {(int(r[0]), int(r[1])) for r in everything.pairs if tuple(r) not in kept}
    candidates = {(int(e), int(n)) for e, n, _, _ in everything.pairs}
    straddling = {(e, c - 1) for e, ep in enumerate(truth["episodes"]) for c in ep["cuts"]} & candidates
    assert dropped == straddling and len(dropped) > 0 and len(everything) == len(kept) + len(dropped)


def test_items_match_stores_and_load_in_workers(paired, tiny_stores, tiny_series):
    _, truth = tiny_series
    ds = PairedFrameDataset(str(paired), "train")
    f_n, page, f_m = ds[3]
    e, n, m, p = ds.pairs[3]
    store = FrameStore(str(tiny_stores / ds.episodes[e]))
    assert f_n.dtype == page.dtype == f_m.dtype == torch.uint8
    assert f_n.shape == f_m.shape == (3, 64, 64) and page.shape[0] == 1 and page.ndim == 3
    assert np.array_equal(f_n.permute(1, 2, 0).numpy(), store[n])
    assert np.array_equal(f_m.permute(1, 2, 0).numpy(), store[m])
    index = json.loads(zipfile.ZipFile(paired).read("index.json"))
    assert index["pages"][p] == ["vol", int(p)] and len(index["pages"]) == truth["pages"]
    loader = torch.utils.data.DataLoader(ds, batch_size=16, num_workers=2, shuffle=True)
    seen = sum(batch[0].shape[0] for batch in loader)
    assert seen == len(ds)


def test_extracted_folder_reads_the_same(paired, tmp_path):
    zipfile.ZipFile(paired).extractall(tmp_path / "x")
    a, b = PairedFrameDataset(str(paired), "val"), PairedFrameDataset(str(tmp_path / "x"), "val")
    assert all(torch.equal(x, y) for x, y in zip(a[5], b[5]))
    with pytest.raises(PairedDatasetError, match="split"):
        PairedFrameDataset(str(paired), "test")


def test_unconditional_zip_loads_in_image_folder_dataset(config, tiny_series, tmp_path):
    _, truth = tiny_series
    out = tmp_path / "uncond.zip"
    result = run(export_unconditional, "--series", config, "--out", out, "--labels")
    assert result.exit_code == 0, result.output
    supported = [ep["outro"][0] - ep["intro"][1] for ep in truth["episodes"]]
    ds = ImageFolderDataset(str(out), resolution=64, use_labels=True)
    assert len(ds) == sum(supported) and ds.image_shape == [3, 64, 64]
    assert zipfile.ZipFile(out).namelist()[0] == "00000/img00000000.png"
    labels = ds.get_label(supported[0]), ds.get_label(supported[0] - 1)
    assert labels[0].argmax() == 1 and labels[1].argmax() == 0
    image, _ = ds[0]
    store = FrameStore(json.loads(open(config).read())["episodes"][0]["store"])
    assert np.array_equal(image.transpose(1, 2, 0), store[truth["episodes"][0]["intro"][1]])


def test_page_labels_are_each_frames_manga_page(config, tiny_series, tmp_path):
    """``--labels=page``: image k of the zip is the k-th supported frame, labelled with its true page."""
    _, truth = tiny_series
    out = tmp_path / "pages.zip"
    result = run(export_unconditional, "--series", config, "--out", out, "--labels=page")
    assert result.exit_code == 0, result.output
    expected = []          # (episode, frame, page) from the ground truth's definitions
    for e, ep in enumerate(truth["episodes"]):
        excluded = {f for a, b in (ep["intro"], ep["outro"]) for f in range(a, b)}
        for n in range(ep["frames"]):
            if n not in excluded and n <= ep["boundaries"][-1]:
                page = ep["page_range"][0] + next(i for i, b in enumerate(ep["boundaries"]) if n <= b)
                expected.append((e, n, page))
    ds = ImageFolderDataset(str(out), resolution=64, use_labels=True)
    assert len(ds) == len(expected)
    assert ds.label_dim == max(page for _, _, page in expected) + 1
    assert [int(ds.get_label(k).argmax()) for k in range(len(ds))] == [page for _, _, page in expected]
    stores = [ep["store"] for ep in json.loads(open(config).read())["episodes"]]
    for k in (0, len(ds) // 2, len(ds) - 1):
        e, n, _ = expected[k]
        assert np.array_equal(ds[k][0].transpose(1, 2, 0), FrameStore(stores[e])[n])


def test_unknown_label_kind_is_one_line(config, tmp_path):
    result = run(export_unconditional, "--series", config, "--out", tmp_path / "x.zip", "--labels=shot")
    assert result.exit_code != 0 and "--labels" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.zip").exists()


@pytest.mark.parametrize("command", [export_unconditional, export_conditional])
@pytest.mark.parametrize("case", ["missing_store", "page_range", "non_monotonic", "exists"])
def test_bad_inputs_one_line_no_output(config, tmp_path, command, case):
    out = tmp_path / "out.zip"
    if case == "missing_store":
        path, message = edited(config, tmp_path, lambda d: d["episodes"][1].update(store="gone")), \
            "episodes[1].store"
    elif case == "page_range":
        path, message = edited(config, tmp_path, lambda d: d["episodes"][0].update(page_range=[0, 500])), \
            "episodes[0].page_range: [0, 500) is not a page range"
    elif case == "non_monotonic":
        pf = json.loads(open(config.replace("series.json", "ep001.json")).read())
        pf["boundaries"][0], pf["boundaries"][1] = pf["boundaries"][1], pf["boundaries"][0]
        (tmp_path / "pf.json").write_text(json.dumps(pf))
        path, message = edited(config, tmp_path, lambda d: d["episodes"][1].update(
            page_function=str(tmp_path / "pf.json"))), "monotonic"
    else:
        out.write_bytes(b"old")
        path, message = config, "already exists (use --force"
    result = run(command, "--series", path, "--out", out)
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert [f for f in os.listdir(tmp_path) if f != "pf.json"] == (["out.zip"] if case == "exists" else [])
    if case == "exists":
        assert out.read_bytes() == b"old"
        assert run(command, "--series", path, "--out", out, "--force").exit_code == 0
        assert zipfile.is_zipfile(out)


def test_conditional_flag_errors(config, tmp_path):
    out = tmp_path / "p.zip"
    for args, message in [(["--val-episodes", "ep009"], "--val-episodes"), (["--no-cross-cuts"], "--cuts"),
                          (["--cuts", tmp_path / "none.json"], "--cuts")]:
        result = run(export_conditional, "--series", config, "--out", out, *args)
        assert result.exit_code == 1 and message in result.output, result.output
    assert not out.exists()


def test_error_while_writing_leaves_nothing(config, tiny_series, tmp_path):
    """Every frame excluded: the error comes from inside the zip writer, and no file is left behind."""
    frames = [ep["frames"] for ep in tiny_series[1]["episodes"]]

    def exclude_all(d):
        for ep, n in zip(d["episodes"], frames):
            ep.update(exclusions=[[0, n]])
            ep.pop("page_function")
    path = edited(config, tmp_path, exclude_all)
    result = run(export_unconditional, "--series", path, "--out", tmp_path / "u.zip")
    assert result.exit_code == 1 and "no supported frames" in result.output, result.output
    assert os.listdir(tmp_path) == []


def test_cuts_folder_of_the_cuts_stage(config, tiny_stores, tmp_path):
    """--cuts takes what the cuts command writes (one file per episode, sharded or not) as it is."""
    folder, sharded = tmp_path / "cuts", tmp_path / "sharded"
    assert run(dataset_tool_anime.cli, "cuts", "--stores", tiny_stores, "--out", folder).exit_code == 0
    for shard in ("0/2", "1/2"):
        assert run(dataset_tool_anime.cli, "cuts", "--stores", tiny_stores, "--out", sharded, "--shard", shard,
                   "--method", "cosine").exit_code == 0
    per_episode = {p.stem: json.loads(p.read_text())["cuts"] for p in folder.glob("ep*.json")}
    assert sorted(per_episode) == ["ep000", "ep001"] and all(per_episode.values())
    assert load_cuts(str(folder)) == per_episode
    assert sorted(load_cuts(str(sharded))) == ["ep000", "ep001"]            # report-<I>of<N>.json skipped
    single = tmp_path / "cuts.json"
    single.write_text(json.dumps(per_episode))
    datasets = []
    for i, source in enumerate((folder, single)):
        out = tmp_path / f"paired{i}.zip"
        result = run(export_conditional, "--series", config, "--out", out, "--cuts", source, "--no-cross-cuts")
        assert result.exit_code == 0, result.output
        datasets.append(PairedFrameDataset(str(out), "all"))
    assert np.array_equal(datasets[0].pairs, datasets[1].pairs) and len(datasets[0]) > 0
    names = datasets[0].episodes
    assert not any(n < c <= m for e, n, m, _ in datasets[0].pairs for c in per_episode[names[e]])


@pytest.mark.parametrize("case", ["empty", "foreign", "twice"])
def test_cuts_folder_errors(config, tmp_path, case):
    folder = tmp_path / "cuts"
    folder.mkdir()
    if case == "foreign":
        (folder / "ep000.json").write_text(json.dumps([1, 2]))
    elif case == "twice":
        for name in ("a.json", "b.json"):
            (folder / name).write_text(json.dumps(dict(episode="ep000", cuts=[5])))
    message = {"empty": "no cuts files", "foreign": "ep000.json: not a file of the cuts stage",
               "twice": "b.json: a second file for episode 'ep000'"}[case]
    result = run(export_conditional, "--series", config, "--out", tmp_path / "p.zip", "--cuts", folder)
    assert result.exit_code == 1 and f"--cuts: {folder}" in result.output and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "p.zip").exists()


def test_pages_come_out_square_without_the_manga_stage(paired, config, tiny_series, tmp_path):
    """The synthetic series' pages are portrait scans; training gets square greyscale pages all the same."""
    series, _ = tiny_series
    assert PIL.Image.open(sorted((series / "manga").glob("*.png"))[0]).size == (128, 181)
    assert json.loads(zipfile.ZipFile(paired).read("index.json"))["page_resolution"] == 64   # the frames' size
    for ds in (PairedFrameDataset(str(paired), "train"), PairedFrameDataset(str(paired), "val")):
        assert all(ds[i][1].shape == (1, 64, 64) for i in (0, len(ds) - 1))
    small = tmp_path / "small.zip"
    assert run(export_conditional, "--series", config, "--out", small, "--page-resolution", 32).exit_code == 0
    with zipfile.ZipFile(small) as zf:
        pages = [n for n in zf.namelist() if n.startswith("pages/")]
        assert pages and all(PIL.Image.open(zf.open(n)).size == (32, 32) for n in pages)
    # A volume the manga stage already made square at the frames' size is copied pixel for pixel.
    assert run(dataset_tool_anime.cli, "manga", series / "manga", "--out", tmp_path / "square",
               "--resolution", 64).exit_code == 0
    square = edited(config, tmp_path, lambda d: d["volumes"][0].update(pages=str(tmp_path / "square")))
    out = tmp_path / "square.zip"
    assert run(export_conditional, "--series", square, "--out", out).exit_code == 0
    with zipfile.ZipFile(out) as zf:
        for i, (_, p) in enumerate(json.loads(zf.read("index.json"))["pages"]):
            exported = np.asarray(PIL.Image.open(zf.open(f"pages/page{i:04d}.png")))
            assert np.array_equal(exported, np.asarray(PIL.Image.open(tmp_path / "square" / f"page{p:04d}.png")))
