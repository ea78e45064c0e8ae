"""pytorch-fid's Inception state dict as a metric network: loading, checks, and a whole FID run.

The real ``pt_inception-2015-12-05-6726825d.pth`` is not needed (nor used): a random state dict
with the module's own keys and shapes stands in, so these tests check the plumbing and the
layout, not that the features equal the official TorchScript file's.
"""

import math

import pytest
import torch

from stylegan2_ada.metrics import MetricError, detectors, frechet_inception_distance, metric_main
from stylegan2_ada.metrics.frechet_inception_distance import frechet_distance
from stylegan2_ada.metrics.inception_fid import FIDInceptionV3, load_pytorch_fid_inception
from stylegan2_ada.training.networks import Generator
from test_metrics import TINY_G, data_kwargs, isolated_env, write_dataset_zip  # noqa: F401 (autouse fixture)

PTH_NAME = "pt_inception-2015-12-05-6726825d.pth"


def random_state_dict(seed=0):
    """The module's keys and shapes, filled so activations stay O(1) through ~50 layers (He-scaled weights)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in FIDInceptionV3().state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue  # files saved by torch < 0.4.1 lack these counters; loading must not need them
        if key.endswith(".weight") and value.dim() > 1:
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=gen) * math.sqrt(2 / fan_in)
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=gen) + 0.5
        elif key.endswith("bn.weight"):
            state[key] = torch.ones(value.shape)
        else:  # biases, running means
            state[key] = torch.randn(value.shape, generator=gen) * 0.1
    return state


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a few shared cores, OpenMP threads waiting on each other make the 94
    small convolutions of a tiny batch ~50x slower than one thread does."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pth_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pytorch_fid")
    torch.save(random_state_dict(), str(folder / PTH_NAME))
    return folder


def test_key_names_and_shapes_follow_pytorch_fid():
    shapes = {key: list(value.shape) for key, value in FIDInceptionV3().state_dict().items()}
    assert shapes["Conv2d_1a_3x3.conv.weight"] == [32, 3, 3, 3]
    assert shapes["Conv2d_1a_3x3.bn.running_mean"] == [32]
    assert shapes["Mixed_5b.branch1x1.conv.weight"] == [64, 192, 1, 1]
    assert shapes["Mixed_6b.branch7x7_2.conv.weight"] == [128, 128, 1, 7]
    assert shapes["Mixed_7a.branch7x7x3_4.conv.weight"] == [192, 192, 3, 3]
    assert shapes["Mixed_7c.branch3x3dbl_3b.conv.weight"] == [384, 384, 3, 1]
    assert shapes["Mixed_7c.branch_pool.conv.weight"] == [192, 2048, 1, 1]
    assert shapes["fc.weight"] == [1008, 2048] and shapes["fc.bias"] == [1008]
    assert not any(key.startswith("AuxLogits") for key in shapes)


def test_load_gives_a_frozen_eval_module_with_both_outputs(pth_dir):
    net = load_pytorch_fid_inception(str(pth_dir / PTH_NAME))
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    images = torch.randint(0, 256, [2, 3, 75, 75], dtype=torch.uint8)  # 75x75: the smallest size the graph takes
    with torch.no_grad():
        features = net(images, return_features=True, resize_images=False)
        logits = net(images.float(), resize_images=False)
        unbiased = net(images, no_output_bias=True, resize_images=False)
    assert features.shape == (2, 2048) and logits.shape == (2, 1008) and torch.isfinite(features).all()
    assert torch.allclose(logits - unbiased, net.fc.bias.expand(2, -1), atol=1e-4)
    assert torch.allclose(features @ net.fc.weight.T, unbiased, atol=1e-3)
    scripted = torch.jit.script(net)  # the same calls work on a TorchScript copy
    assert torch.equal(scripted(images, return_features=True, resize_images=False), features)


def test_default_call_resizes_small_images_to_299(pth_dir):
    net = load_pytorch_fid_inception(str(pth_dir / PTH_NAME))
    seen = []
    net.Conv2d_1a_3x3.register_forward_hook(lambda module, args, out: seen.append(list(args[0].shape)))
    with torch.no_grad():
        features = net(torch.full([1, 3, 8, 8], 255, dtype=torch.uint8), return_features=True)
    assert seen == [[1, 3, 299, 299]] and features.shape == (1, 2048)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        net(torch.zeros([1, 1, 8, 8]))


@pytest.mark.parametrize("change, fragment", [
    (lambda sd: sd.pop("Mixed_5b.branch1x1.conv.weight"), "missing key 'Mixed_5b.branch1x1.conv.weight'"),
    (lambda sd: sd.update({"AuxLogits.fc.weight": torch.zeros(1)}), "unexpected key 'AuxLogits.fc.weight'"),
    (lambda sd: sd.update({"fc.weight": torch.zeros(1000, 2048)}), "'fc.weight' has shape [1000, 2048]"),
    (lambda sd: sd.clear() or sd.update({"fc.bias": 1.0}), "missing key"),
])
def test_wrong_state_dicts_give_one_line_naming_the_file(tmp_path, change, fragment):
    state = random_state_dict()
    change(state)
    path = tmp_path / PTH_NAME
    torch.save(state, str(path))
    with pytest.raises(MetricError) as err:
        load_pytorch_fid_inception(str(path))
    message = str(err.value)
    assert "\n" not in message and str(path) in message and fragment in message


def test_files_that_are_not_state_dicts(tmp_path):
    path = tmp_path / PTH_NAME
    torch.save([torch.zeros(1)], str(path))
    with pytest.raises(MetricError, match="holds a list, not a state dict"):
        load_pytorch_fid_inception(str(path))
    path.write_bytes(b"not a pickle")
    with pytest.raises(MetricError, match=r"torch.load\(weights_only=True\) failed") as err:
        detectors.load_detector(str(path))
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_resolution_prefers_the_official_file_and_only_for_inception(pth_dir, tmp_path):
    assert detectors.resolve_detector_path(detectors.INCEPTION_URL, str(pth_dir)) == str(pth_dir / PTH_NAME)
    (tmp_path / PTH_NAME).write_bytes(b"")
    (tmp_path / "inception-2015-12-05.pt").write_bytes(b"")
    official = detectors.resolve_detector_path(detectors.INCEPTION_URL, str(tmp_path))
    assert official == str(tmp_path / "inception-2015-12-05.pt")
    detector = detectors.load_detector(str(pth_dir / PTH_NAME))
    with pytest.raises(MetricError, match="takes no 'return_lpips' argument"):  # never a VGG16 stand-in
        detectors.check_detector_args(detector, ("resize_images", "return_lpips"), PTH_NAME)


def test_fid_runs_end_to_end_on_the_state_dict(pth_dir, monkeypatch):
    """calc_metric finds the .pth (and nothing else) in detector_dir and FID comes out of its 2048-d features.

    One shortcut keeps this within seconds on a CPU: the Fréchet distance, whose 2048x2048
    eigen-decompositions alone can take most of a minute there, is taken over the first 64
    feature dimensions after checking that the full statistics arrived (its maths is tested in
    test_metrics.py).
    """
    monkeypatch.setattr(detectors, "_loaded", {})  # load afresh and forget it afterwards
    seen = []

    def leading_dims_distance(mu1, sigma1, mu2, sigma2, dims=64):
        seen.append([list(mu1.shape), list(sigma1.shape), list(mu2.shape), list(sigma2.shape)])
        return frechet_distance(mu1[:dims], sigma1[:dims, :dims], mu2[:dims], sigma2[:dims, :dims])

    monkeypatch.setattr(frechet_inception_distance, "frechet_distance", leading_dims_distance)
    torch.manual_seed(0)
    G = Generator(**dict(TINY_G, c_dim=0, img_resolution=8))
    data = write_dataset_zip(pth_dir / "data8.zip", num=8, res=8)
    result = metric_main.calc_metric("fid50k_full", G=G, dataset_kwargs=data_kwargs(data), num_workers=0,
                                     counts="num_gen=8,max_real=8", detector_dir=str(pth_dir), progress=False)
    assert seen == [[[2048], [2048, 2048], [2048], [2048, 2048]]]
    fid = result.results["fid50k_full"]
    assert math.isfinite(fid) and fid > 0


def test_statistics_cache_key_names_the_weight_file(tmp_path):
    from stylegan2_ada.metrics import detectors

    folder = tmp_path / "nets"
    folder.mkdir()
    (folder / "pt_inception-2015-12-05-6726825d.pth").write_bytes(b"x")
    assert detectors.detector_source_name(detectors.INCEPTION_URL, str(folder)) == "pt_inception-2015-12-05-6726825d.pth"
    (folder / "inception-2015-12-05.pt").write_bytes(b"x")
    assert detectors.detector_source_name(detectors.INCEPTION_URL, str(folder)) == "inception-2015-12-05.pt"
    assert detectors.detector_source_name(detectors.VGG16_URL, None) == "vgg16.pt"
