"""The built-in demo data: an official-format zip that our dataset reads, reproducible by seed."""

import hashlib

import numpy as np
from click.testing import CliRunner

from manganime_ext.cli import toy_shapes as toy_shapes_cli
from manganime_ext.synthetic import toy_shapes
from stylegan2_ada.training.dataset import ImageFolderDataset


def test_zip_is_readable_labelled_and_reproducible(tmp_path):
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    toy_shapes.write_shapes_zip(str(a), count=12, resolution=16, seed=3)
    toy_shapes.write_shapes_zip(str(b), count=12, resolution=16, seed=3)
    assert hashlib.md5(a.read_bytes()).hexdigest() == hashlib.md5(b.read_bytes()).hexdigest()
    dataset = ImageFolderDataset(str(a), use_labels=True)
    assert len(dataset) == 12 and dataset.resolution == 16 and dataset.num_channels == 3
    image, label = dataset[0]
    assert image.dtype == np.uint8 and label.shape == (3,) and label.sum() == 1
    # Flat colours with dark outlines: a spread of intensities, not noise or a blank frame.
    assert image.std() > 20 and image.min() < 80


def test_cli_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "s.zip"
    runner = CliRunner()
    assert runner.invoke(toy_shapes_cli.main, [f"--out={out}", "--count=2", "--resolution=16"]).exit_code == 0
    result = runner.invoke(toy_shapes_cli.main, [f"--out={out}", "--count=2", "--resolution=16"])
    assert result.exit_code != 0 and "--force" in result.output
    assert runner.invoke(toy_shapes_cli.main, [f"--out={out}", "--count=2", "--resolution=16", "--force"]).exit_code == 0
