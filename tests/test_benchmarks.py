"""The StyleGAN2-ADA benchmarks' harness: in-run baselines, and the --official comparison.

We have no copy of the official release, so a fake one stands in: a folder laid out like the clone
(top-level ``dnnlib``, ``torch_utils``, ``training``) whose ``training.networks``/``loss``/``augment``
re-export our classes. The harness must import it from that folder in a worker of its own, run the
same workload there (the same FLOPs per image) and report the ratio of the two throughputs. Our bf16
worker runs beside fp32 in the same run. Sizes are tiny and each figure is one timed call, so the
tests check what was measured and how the ratios are formed, never how large a ratio is: on a shared
machine one disturbed call can move a tiny timing several-fold (the benchmarks themselves, with their
repeats and rounds, are where speed is judged).
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = ["--rounds", "1", "--repeats", "1", "--threads", "1", "--batch", "2", "--resolution", "8",
        "--cbase", "128", "--cmax", "16"]
NETWORK_WORKLOADS = ("G forward", "G forward+backward", "D forward+backward")
OURS = {"networks": "from stylegan2_ada.training.networks import Discriminator, Generator\n",
        "loss": "from stylegan2_ada.training.loss import StyleGAN2Loss\n",
        "augment": "from stylegan2_ada.training.augment import AugmentPipe\n"}


def fake_release(root: Path, modules: Optional[Dict[str, str]] = None) -> Path:
    """A folder shaped like the official clone; ``modules`` gives the text of training/<name>.py."""
    for package in ("dnnlib", "torch_utils", "training"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    for name, text in (modules or OURS).items():
        (root / "training" / f"{name}.py").write_text(text)
    return root


def bench(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=900)


def summary(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_ours_over_official(ratio: float, ours: float, official: float) -> None:
    """The ratio is ours over official, rounded to 4 significant digits, from two real timings."""
    assert ours > 0 and official > 0
    assert ratio == pytest.approx(ours / official, rel=2e-3)


def test_networks_bench_measures_the_official_release_from_its_own_folder(tmp_path):
    release = fake_release(tmp_path / "stylegan2-ada-pytorch")
    result = bench("bench_networks.py", *TINY, "--precision", "fp32", "--official", str(release))
    report = summary(result)
    assert f"official: {release / 'training'}" in result.stdout
    assert report["official_skipped"] is None and report["bf16_img_s"] is None
    for name in NETWORK_WORKLOADS:
        ours, official = report["runs"]["fp32"][name], report["runs"]["official"][name]
        assert official["gflop_per_img"] == ours["gflop_per_img"] > 0  # the same networks do the same arithmetic
        assert 0 < ours["of_conv_peak"] and 0 < official["of_conv_peak"]
        assert report["fp32_img_s"][name] == ours["img_per_s"]
        assert_ours_over_official(report["fp32_over_official"][name], ours["img_per_s"], official["img_per_s"])


def test_train_bench_runs_every_phase_in_fp32_bf16_and_the_official_code(tmp_path):
    release = fake_release(tmp_path / "clone")
    result = bench("bench_train.py", *TINY, "--official", str(release))
    report = summary(result)
    assert set(report["runs"]) == {"fp32", "bf16", "official"}
    for label, row in report["runs"].items():
        assert set(row["phase_seconds_per_cycle"]) == {"Gmain", "Greg", "Dmain", "Dreg"}
        assert all(seconds > 0 for seconds in row["phase_seconds_per_cycle"].values())
        assert row["gflop_per_img"] > 0 and row["of_conv_peak"] > 0 and row["peak_rss_mib"] > 0
        assert report[f"{label}_img_s"] == row["img_per_s"]
    assert report["cpu"]["model"] and set(report["cpu"]) >= {"amx_bf16", "avx512_bf16"}
    # bf16 does the same arithmetic, in another type, and its conv peak is a bf16 one
    assert report["runs"]["bf16"]["gflop_per_img"] == report["runs"]["fp32"]["gflop_per_img"]
    assert "3x3, 16->16, bf16" in result.stdout
    assert report["bf16_over_fp32"] == pytest.approx(report["bf16_img_s"] / report["fp32_img_s"], rel=2e-3)
    assert report["bf16_over_official"] == pytest.approx(report["bf16_img_s"] / report["official_img_s"], rel=2e-3)
    assert_ours_over_official(report["fp32_over_official"], report["fp32_img_s"], report["official_img_s"])


def test_without_official_the_comparison_is_skipped_not_faked():
    result = bench("bench_networks.py", *TINY)
    report = summary(result)
    assert "comparison skipped" in result.stdout
    assert report["official_img_s"] is None and "fp32_over_official" not in report
    assert report["official_skipped"] == "no --official PATH given"
    assert report["fp32_img_s"]["G forward"] > 0 and report["bf16_img_s"]["G forward"] > 0
    assert set(report["bf16_over_fp32"]) == set(NETWORK_WORKLOADS)


@pytest.mark.parametrize("precision", ["fp64", "fp32,fp32", ""])
def test_a_bad_precision_list_is_a_one_line_error(precision):
    result = bench("bench_networks.py", "--precision", precision)
    assert result.returncode != 0 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert f"--precision {precision}:" in line


@pytest.mark.parametrize("layout", ["missing", "no_networks"])
def test_a_folder_that_is_not_the_release_is_a_one_line_error(tmp_path, layout):
    folder = tmp_path / "not-a-clone"
    if layout == "no_networks":
        fake_release(folder, modules={"loss": OURS["loss"]})
    result = bench("bench_train.py", "--official", str(folder))
    assert result.returncode != 0
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert f"--official {folder}" in line
    assert ("no such folder" if layout == "missing" else "no training/networks.py") in line


def test_a_release_that_does_not_import_is_a_one_line_error(tmp_path):
    release = fake_release(tmp_path / "clone", modules=dict(OURS, networks="raise ImportError('needs a CUDA build')\n"))
    result = bench("bench_networks.py", *TINY, "--official", str(release))
    assert result.returncode != 0
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert "importing training.networks failed: ImportError: needs a CUDA build" in line


def test_precision_quality_bench_compares_bf16_with_the_spread_of_fp32_seeds(tmp_path):
    """Two seeds x fp32/bf16 on a tiny dataset: every run is summarised, bf16 beside fp32's range."""
    from manganime_ext.synthetic.toy_shapes import write_shapes_zip

    data = tmp_path / "shapes.zip"
    write_shapes_zip(str(data), count=64, resolution=32)
    result = bench("bench_precision_quality.py", "--seeds", "0,1", "--kimg", "0.016", "--tick", "0.008",
                   "--batch", "4", "--cbase", "128", "--cmax", "16", "--data", str(data), "--keep", str(tmp_path / "runs"))
    record = summary(result)
    assert record["benchmark"] == "precision_quality" and record["seeds"] == [0, 1]
    assert set(record["runs"]) == {"fp32", "bf16"} and all(len(v) == 2 for v in record["runs"].values())
    fid = record["spread"]["fid_standin"]
    assert 0 < fid["fp32_min"] <= fid["fp32_mean"] <= fid["fp32_max"] and fid["bf16_min"] > 0
    assert record["curve_distance"]["Loss/G/loss"]["fp32_vs_fp32_other_seed"] is not None
    assert record["bf16_inference_on_fp32_weights"]["psnr_db"] > 20
    training = json.loads(next((tmp_path / "runs" / "bf16-seed1").glob("*/training_options.json")).read_text())
    assert training["precision"] == "bf16"


def test_precision_quality_bench_names_a_missing_dataset(tmp_path):
    result = bench("bench_precision_quality.py", "--data", str(tmp_path / "nope.zip"), "--kimg", "0.008")
    assert result.returncode != 0 and "nope.zip" in result.stderr.strip().splitlines()[-1]


def test_precision_quality_bench_names_a_training_run_that_fails(tmp_path):
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"not a zip")
    result = bench("bench_precision_quality.py", "--data", str(corrupt), "--kimg", "0.008", "--seeds", "0")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "training" in last and "failed" in last
