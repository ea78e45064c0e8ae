"""training.dataset: the official dataset_tool.py zip, folders, x-flip, subsets, workers, errors."""

import json
import pickle
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from conftest import FIXTURES
from stylegan2_ada.training.dataset import DatasetError, ImageFolderDataset

UPSTREAM_ZIP = FIXTURES / "upstream_dataset_32_labels.zip"


def upstream_labels() -> list:
    """Class index of each fixture image, in file order, straight from its dataset.json."""
    with zipfile.ZipFile(UPSTREAM_ZIP) as z:
        return [label for _fname, label in sorted(json.loads(z.read("dataset.json"))["labels"])]


def write_images(folder, shapes, mode="RGB", seed=0):
    """Random images ``img{i}.png`` of the given (height, width); returns their pixel arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    rnd = np.random.RandomState(seed)
    arrays = []
    channels = PIL.Image.getmodebands(mode)
    for i, (height, width) in enumerate(shapes):
        shape = (height, width) if channels == 1 else (height, width, channels)
        pixels = rnd.randint(0, 256, size=shape, dtype=np.uint8)
        PIL.Image.fromarray(pixels, mode).save(folder / f"img{i}.png")
        arrays.append(pixels)
    return arrays


def all_items(dataset):
    return [dataset[i] for i in range(len(dataset))]


def assert_same_items(a, b):
    assert len(a) == len(b)
    for (image_a, label_a), (image_b, label_b) in zip(a, b):
        np.testing.assert_array_equal(image_a, image_b)
        np.testing.assert_array_equal(label_a, label_b)


# --- the official zip ----------------------------------------------------------------------------


def test_upstream_zip_without_labels():
    ds = ImageFolderDataset(str(UPSTREAM_ZIP))
    assert ds.name == "upstream_dataset_32_labels"
    assert len(ds) == 10 and ds.image_shape == [3, 32, 32]
    assert ds.num_channels == 3 and ds.resolution == 32
    assert ds.label_shape == [0] and ds.label_dim == 0 and not ds.has_labels
    image, label = ds[0]
    assert image.dtype == np.uint8 and image.shape == (3, 32, 32) and image.flags.c_contiguous
    assert label.dtype == np.float32 and label.shape == (0,)
    assert image.std() > 0  # real pixels, not a blank array
    ds.close()


def test_upstream_zip_labels_are_onehot_rows_of_dataset_json():
    ds = ImageFolderDataset(str(UPSTREAM_ZIP), use_labels=True)
    assert ds.has_labels and ds.has_onehot_labels and ds.label_shape == [3] and ds.label_dim == 3
    for i, cls in enumerate(upstream_labels()):
        expected = np.eye(3, dtype=np.float32)[cls]
        np.testing.assert_array_equal(ds.get_label(i), expected)
        np.testing.assert_array_equal(ds[i][1], expected)
        details = ds.get_details(i)
        assert details.raw_idx == i and details.xflip is False and details.raw_label == cls


def test_xflip_doubles_and_second_half_is_mirrored():
    plain = ImageFolderDataset(str(UPSTREAM_ZIP), use_labels=True)
    flipped = ImageFolderDataset(str(UPSTREAM_ZIP), use_labels=True, xflip=True)
    assert len(flipped) == 20
    for i in range(10):
        np.testing.assert_array_equal(flipped[i][0], plain[i][0])
        image, label = flipped[i + 10]
        assert image.flags.c_contiguous
        np.testing.assert_array_equal(image, plain[i][0][:, :, ::-1])
        np.testing.assert_array_equal(label, plain[i][1])
        assert flipped.get_details(i + 10).xflip and flipped.get_details(i + 10).raw_idx == i


def test_max_size_subset_is_reproducible_and_sorted():
    full = ImageFolderDataset(str(UPSTREAM_ZIP), use_labels=True)
    subsets = [ImageFolderDataset(str(UPSTREAM_ZIP), use_labels=True, max_size=4, random_seed=seed)
               for seed in (0, 0, 1)]
    picks = [[ds.get_details(i).raw_idx for i in range(len(ds))] for ds in subsets]
    assert all(len(p) == 4 and p == sorted(p) and len(set(p)) == 4 for p in picks)
    assert picks[0] == picks[1] and picks[0] != picks[2]
    assert_same_items(all_items(subsets[0]), [full[i] for i in picks[0]])
    assert len(ImageFolderDataset(str(UPSTREAM_ZIP), max_size=50)) == 10


def test_extracted_folder_reads_like_the_zip(tmp_path):
    with zipfile.ZipFile(UPSTREAM_ZIP) as z:
        z.extractall(tmp_path / "extracted")
    from_zip = ImageFolderDataset(str(UPSTREAM_ZIP), use_labels=True)
    from_dir = ImageFolderDataset(str(tmp_path / "extracted") + "/", use_labels=True)
    assert from_dir.name == "extracted"
    assert_same_items(all_items(from_dir), all_items(from_zip))


# --- folders of other kinds ------------------------------------------------------------------------


@pytest.mark.parametrize("mode, channels", [("L", 1), ("RGBA", 4)])
def test_greyscale_and_rgba_folders(tmp_path, mode, channels):
    arrays = write_images(tmp_path / "sub", [(8, 8)] * 3, mode=mode)
    ds = ImageFolderDataset(str(tmp_path))
    assert ds.image_shape == [channels, 8, 8]
    for i, pixels in enumerate(arrays):
        np.testing.assert_array_equal(ds[i][0], pixels.reshape(8, 8, channels).transpose(2, 0, 1))


def test_float_vector_labels(tmp_path):
    write_images(tmp_path, [(4, 4)] * 2)
    labels = [["img0.png", [0.5, -1]], ["img1.png", [2, 3.25]]]
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": labels}))
    ds = ImageFolderDataset(str(tmp_path), use_labels=True)
    assert ds.label_shape == [2] and ds.has_labels and not ds.has_onehot_labels
    np.testing.assert_array_equal(ds[1][1], np.array([2, 3.25], dtype=np.float32))


# --- processes -----------------------------------------------------------------------------------


def test_pickled_dataset_reopens_the_zip():
    ds = ImageFolderDataset(str(UPSTREAM_ZIP), use_labels=True, xflip=True)
    expected = ds[13]  # the zip handle is open now
    state = ds.__getstate__()
    assert all(not isinstance(v, zipfile.ZipFile) for v in state.values())
    clone = pickle.loads(pickle.dumps(ds))
    assert_same_items([clone[13]], [expected])
    clone.close()
    assert_same_items([clone[13]], [expected])  # re-opened after close()


def test_dataloader_with_two_workers():
    ds = ImageFolderDataset(str(UPSTREAM_ZIP), use_labels=True, xflip=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    images, labels = zip(*loader)
    expected = all_items(ds)
    np.testing.assert_array_equal(torch.cat(images).numpy(), np.stack([im for im, _ in expected]))
    np.testing.assert_array_equal(torch.cat(labels).numpy(), np.stack([lb for _, lb in expected]))


# --- errors the user can fix -------------------------------------------------------------------------


def truncated_png(root):
    write_images(root, [(16, 16)] * 2)
    data = (root / "img1.png").read_bytes()
    (root / "img1.png").write_bytes(data[: len(data) // 2])
    return root, "img1.png"


def text_as_png_in_zip(root):
    root.mkdir()
    with zipfile.ZipFile(root / "data.zip", "w") as z:
        z.writestr("00000/notes.png", "just text")
    return root / "data.zip", "00000/notes.png"


def corrupt_zip(root):
    root.mkdir()
    (root / "data.zip").write_bytes(b"PK\x03\x04 not really a zip")
    return root / "data.zip", "data.zip"


def plain_file(root):
    root.mkdir()
    (root / "data.txt").write_text("hello")
    return root / "data.txt", "data.txt"


def no_images(root):
    root.mkdir()
    (root / "readme.txt").write_text("hello")
    return root, root.name


def images(*shapes, mode="RGB", offender="img0.png"):
    """Builder: the first images in root, the rest in root/more (sorted after them)."""
    def make(root):
        write_images(root, shapes[:1])
        write_images(root / "more", shapes[1:], mode=mode)
        return root, offender
    return make


def labels_file(content):
    """Builder: three images and a dataset.json with ``content`` (a string or JSON data)."""
    def make(root):
        write_images(root, [(4, 4)] * 3)
        if content is not None:
            (root / "dataset.json").write_text(content if isinstance(content, str) else json.dumps(content))
        return root, "dataset.json"
    return make


# Each builder writes a bad dataset below root and returns (dataset path, name the error must show).
LABELS = {"use_labels": True}
CONSTRUCTION_ERRORS = {
    "missing path": (lambda root: (root / "absent", "absent"), {}),
    "not a folder or zip": (plain_file, {}),
    "corrupt zip": (corrupt_zip, {}),
    "no images": (no_images, {}),
    "text renamed .png in zip": (text_as_png_in_zip, {}),
    "mixed sizes": (images((16, 16), (32, 32), offender="more/img0.png"), {}),
    "mixed channels": (images((16, 16), (16, 16), mode="L", offender="more/img0.png"), {}),
    "not square": (images((16, 32)), {}),
    "not a power of two": (images((24, 24)), {}),
    "resolution mismatch": (images((16, 16), offender="ds"), {"resolution": 64}),
    "dataset.json missing": (labels_file(None), LABELS),
    "labels null": (labels_file({"labels": None}), LABELS),
    "label missing for one image": (labels_file({"labels": [["img0.png", 0], ["img2.png", 1]]}), LABELS),
    "labels of mixed shapes": (
        labels_file({"labels": [["img0.png", [0.1, 0.2]], ["img1.png", [0.3]], ["img2.png", [1, 2]]]}), LABELS),
    "class and vector labels": (
        labels_file({"labels": [["img0.png", 1], ["img1.png", [0.3]], ["img2.png", 0]]}), LABELS),
    "invalid json": (labels_file("{not json"), LABELS),
}


@pytest.mark.parametrize("case", CONSTRUCTION_ERRORS)
def test_construction_errors_name_the_file(tmp_path, case):
    build, kwargs = CONSTRUCTION_ERRORS[case]
    path, offender = build(tmp_path / "ds")
    with pytest.raises(DatasetError) as info:
        ImageFolderDataset(str(path), **kwargs)
    message = str(info.value)
    assert offender in message and "\n" not in message, message


def test_missing_label_names_the_image(tmp_path):
    path, _ = labels_file({"labels": [["img0.png", 0], ["img2.png", 1]]})(tmp_path)
    with pytest.raises(DatasetError, match="img1.png"):
        ImageFolderDataset(str(path), use_labels=True)


def test_undecodable_image_fails_on_read_with_its_name(tmp_path):
    path, name = truncated_png(tmp_path)
    ds = ImageFolderDataset(str(path))  # the header is intact
    assert ds[0][0].shape == (3, 16, 16)
    with pytest.raises(DatasetError) as info:
        ds[1]
    assert name in str(info.value) and "\n" not in str(info.value)
