"""legacy: official pickles are read without executing anything; our snapshots round-trip exactly."""

import collections
import io
import json
import os
import pathlib
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from stylegan2_ada import dnnlib, legacy
from stylegan2_ada.torch_utils import persistence
from stylegan2_ada.training.networks import Discriminator, Generator

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
NET = "net_orig_orig_c0_rgba"
BUFFER_NAMES = {"resample_filter", "noise_const", "w_avg"}  # everything else in the fixture is a Parameter


@pytest.fixture(scope="module")
def ref():
    """Fixture tensors (prefix-stripped per network) and constructor kwargs."""
    data = np.load(FIXTURES / f"{NET}.npz")
    manifest = json.loads((FIXTURES / "manifest.json").read_text())[NET]
    tensors = {net: {k[len(net) + 1:]: data[k] for k in data.files if k.startswith(net + "/")} for net in ("G", "D")}
    return {"data": data, "tensors": tensors, "G_kwargs": manifest["G_kwargs"], "D_kwargs": manifest["D_kwargs"]}


def assert_close(actual, expected):
    expected = torch.as_tensor(expected)
    assert (actual - expected).abs().max() <= 5e-4 * expected.abs().max()


def check_outputs(nets, ref):
    """G_ema/G reproduce img_const and D reproduces both logits of the fixture."""
    data = ref["data"]
    ws, c = torch.from_numpy(data["out/ws_psi1"]), torch.from_numpy(data["in/c"])
    for key in ("G", "G_ema"):
        assert_close(nets[key].synthesis(ws, noise_mode="const", force_fp32=True), data["out/img_const"])
    assert_close(nets["D"](torch.from_numpy(data["out/img_const"]), c, force_fp32=True), data["out/D_logits_fake"])
    assert_close(nets["D"](torch.from_numpy(data["in/real"]), c, force_fp32=True), data["out/D_logits_real"])


# ---------------------------------------------------------------------------------------------
# Writing official-format pickles inside the test (the globals they name are faked in sys.modules).


def fake_global(monkeypatch, module, name, obj):
    """Make ``module.name`` resolve to ``obj`` so pickle writes exactly that global."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    obj.__module__, obj.__name__, obj.__qualname__ = module, name, name
    setattr(sys.modules[module], name, obj)
    return obj


@pytest.fixture
def official(monkeypatch, tmp_path):
    """Builder of official-style pickles whose ``module_src`` would write a marker file if executed."""
    marker = tmp_path / "module_src_was_executed"

    def reconstruct(meta):  # what the official loader does: exec the stored source
        exec(meta["module_src"], {})  # noqa: S102 (the point of the test)
        return meta

    reconstruct = fake_global(monkeypatch, "torch_utils.persistence", "_reconstruct_persistent_obj", reconstruct)
    easydict = fake_global(monkeypatch, "dnnlib.util", "EasyDict", type("EasyDict", (dict,), {}))

    class Persistent:
        def __init__(self, meta):
            self.meta = meta

        def __reduce__(self):
            return reconstruct, (self.meta,)

    def network(tensors, class_name, init_kwargs=None):
        """Persistent meta for a module whose state_dict is ``tensors``, children nested in ``_modules``."""
        params, buffers, children = collections.OrderedDict(), collections.OrderedDict(), {}
        for name, value in tensors.items():
            head, _, rest = name.partition(".")
            if rest:
                children.setdefault(head, {})[rest] = value
            elif head in BUFFER_NAMES:
                buffers[head] = torch.from_numpy(np.array(value))
            else:
                params[head] = torch.nn.Parameter(torch.from_numpy(np.array(value)))
        state = {
            "training": False, "_parameters": params, "_buffers": buffers, "_non_persistent_buffers_set": set(),
            "_modules": collections.OrderedDict((k, network(v, "SubLayer")) for k, v in children.items()),
            "_forward_hooks": collections.OrderedDict(), "_init_args": (), "_init_kwargs": easydict(init_kwargs or {}),
        }
        src = f"open({str(marker)!r}, 'w').write('executed')"
        return Persistent({"type": "class", "version": 6, "module_src": src, "class_name": class_name, "state": state})

    def write(path, ref, protocol=4, G_tensors=None):
        G_tensors = ref["tensors"]["G"] if G_tensors is None else G_tensors
        snapshot = {
            "G": network(G_tensors, "Generator", ref["G_kwargs"]),
            "D": network(ref["tensors"]["D"], "Discriminator", ref["D_kwargs"]),
            "G_ema": network(G_tensors, "Generator", ref["G_kwargs"]),
            "augment_pipe": None,
            "training_set_kwargs": easydict(path="data.zip", use_labels=False, max_size=np.int64(10), resolution=16),
        }
        path.write_bytes(pickle.dumps(snapshot, protocol=protocol))
        return path

    return types.SimpleNamespace(write=write, marker=marker)


@pytest.mark.parametrize("protocol", [2, 4])
def test_official_pickle_rebuilds_networks_without_running_code(official, ref, tmp_path, protocol):
    path = official.write(tmp_path / "official.pkl", ref, protocol=protocol)
    nets = legacy.load_network_pkl(str(path))
    assert not official.marker.exists(), "module_src must never be executed"
    assert isinstance(nets["G_ema"], Generator) and isinstance(nets["D"], Discriminator)
    assert nets["augment_pipe"] is None
    assert nets["training_set_kwargs"] == {"path": "data.zip", "use_labels": False, "max_size": 10, "resolution": 16}
    assert not nets["G_ema"].training and not any(p.requires_grad for p in nets["G_ema"].parameters())
    check_outputs(nets, ref)

    # The file really is dangerous: the official way of loading runs module_src.
    pickle.loads(path.read_bytes())
    assert official.marker.exists()


def test_official_pickle_from_open_url_with_force_fp16(official, ref, tmp_path):
    path = official.write(tmp_path / "official.pkl", ref)
    with dnnlib.util.open_url(path.as_uri()) as f:
        nets = legacy.load_network_pkl(f, force_fp16=True)
    synthesis_kwargs = nets["G_ema"].init_kwargs["synthesis_kwargs"]
    assert (synthesis_kwargs["num_fp16_res"], synthesis_kwargs["conv_clamp"]) == (4, 256)
    assert (nets["D"].init_kwargs["num_fp16_res"], nets["D"].init_kwargs["conv_clamp"]) == (4, 256)
    assert synthesis_kwargs["architecture"] == ref["G_kwargs"]["synthesis_kwargs"]["architecture"]
    check_outputs(nets, ref)


@pytest.mark.parametrize("mutate, named", [
    (lambda t: t.pop("mapping.fc0.bias"), "mapping.fc0.bias"),
    (lambda t: t.update({"mapping.fc9.weight": np.zeros(3, np.float32)}), "mapping.fc9.weight"),
    (lambda t: t.update({"synthesis.b8.conv0.bias": np.zeros(5, np.float32)}), "synthesis.b8.conv0.bias"),
])
def test_official_pickle_tensor_mismatch_names_the_key(official, ref, tmp_path, mutate, named):
    G_tensors = dict(ref["tensors"]["G"])
    mutate(G_tensors)
    path = official.write(tmp_path / "bad.pkl", ref, G_tensors=G_tensors)
    with pytest.raises(legacy.NetworkLoadError, match=named.replace(".", r"\.")):
        legacy.load_network_pkl(path)


class _Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _evil_pickles(marker):
    """Streams that would create ``marker`` if unpickled normally, and the global each one names."""
    yield "os.system", f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    yield "builtins.eval", pickle.dumps({"G": _Evil(eval, f"open({str(marker)!r}, 'w')")}, protocol=4)
    yield "subprocess.Popen", pickle.dumps([_Evil(subprocess.Popen, ["touch", str(marker)])], protocol=2)
    buf = io.BytesIO()
    torch.save({"format": "manganime-network", "G": _Evil(os.system, f"touch {marker}")}, buf)
    yield r"\w+\.system", buf.getvalue()  # our zip format goes through torch's weights_only loader


def test_malicious_pickles_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    for global_name, payload in _evil_pickles(marker):
        path = tmp_path / "evil.pkl"
        path.write_bytes(payload)
        with pytest.raises(legacy.UnsafePickleError, match=global_name) as info:
            legacy.load_network_pkl(path)
        assert isinstance(info.value, pickle.UnpicklingError) and str(path) in str(info.value)
        assert not marker.exists()


def test_tensorflow_pickle_is_a_clear_error(tmp_path):
    path = tmp_path / "tf.pkl"
    path.write_bytes(b"(dp0\nS'G'\ncdnnlib.tflib.network\nNetwork\n)Rs.")
    with pytest.raises(legacy.NetworkLoadError, match="TensorFlow"):
        legacy.load_network_pkl(path)


# ---------------------------------------------------------------------------------------------
# Our own snapshot format.


@pytest.fixture(scope="module")
def fixture_nets(ref):
    G, D = Generator(**ref["G_kwargs"]), Discriminator(**ref["D_kwargs"])
    G.load_state_dict({k: torch.from_numpy(v) for k, v in ref["tensors"]["G"].items()})
    D.load_state_dict({k: torch.from_numpy(v) for k, v in ref["tensors"]["D"].items()})
    return G, D


def test_snapshot_round_trip(fixture_nets, ref, tmp_path):
    G, D = fixture_nets
    training_set_kwargs = dnnlib.EasyDict(path="d.zip", xflip=np.bool_(True), resolution=np.int64(16), size=(1, 2))
    path = tmp_path / "network-snapshot-000000.pkl"
    legacy.save_network_pkl(path, {"G": G, "D": D, "G_ema": G, "augment_pipe": None,
                                   "training_set_kwargs": training_set_kwargs, "progress": {"cur_nimg": np.int64(4000)}})
    assert os.listdir(tmp_path) == [path.name], "no temp files left behind"

    raw = torch.load(path, weights_only=True)
    assert (raw["format"], raw["version"]) == ("manganime-network", 2)
    assert raw["modules"]["G"]["class_name"] == "stylegan2_ada.training.networks.Generator"
    assert type(raw["training_set_kwargs"]) is dict and type(raw["training_set_kwargs"]["resolution"]) is int

    with dnnlib.util.open_url(str(path)) as f:
        nets = legacy.load_network_pkl(f)
    assert nets["progress"] == {"cur_nimg": 4000}
    assert nets["training_set_kwargs"] == {"path": "d.zip", "xflip": True, "resolution": 16, "size": (1, 2)}
    for key, original in (("G", G), ("G_ema", G), ("D", D)):
        assert nets[key].init_kwargs == original.init_kwargs
        for (name, a), (_, b) in zip(original.state_dict().items(), nets[key].state_dict().items()):
            assert torch.equal(a, b), name
    ws = torch.from_numpy(ref["data"]["out/ws_psi1"])
    assert torch.equal(nets["G_ema"].synthesis(ws, noise_mode="const", force_fp32=True),
                       G.synthesis(ws, noise_mode="const", force_fp32=True))
    check_outputs(nets, ref)


def test_save_refuses_unstorable_data(fixture_nets, tmp_path):
    G, _ = fixture_nets
    with pytest.raises(TypeError, match="progress.callback"):
        legacy.save_network_pkl(tmp_path / "x.pkl", {"G_ema": G, "progress": {"callback": print}})
    assert os.listdir(tmp_path) == []


def test_version_1_snapshots_with_bare_class_names_still_load(fixture_nets, ref, tmp_path):
    G, D = fixture_nets
    path = tmp_path / "v2.pkl"
    legacy.save_network_pkl(path, {"G": G, "D": D, "G_ema": G, "progress": {"cur_nimg": 8}})
    data = torch.load(path, weights_only=True)
    v1 = {k: v for k, v in data.items() if k != "modules"}
    for key, desc in data["modules"].items():
        v1[key] = None if desc is None else dict(desc, class_name=desc["class_name"].rsplit(".", 1)[1])
    v1["version"] = 1
    torch.save(v1, tmp_path / "v1.pkl")
    nets = legacy.load_network_pkl(tmp_path / "v1.pkl")
    assert nets["progress"] == {"cur_nimg": 8} and nets["augment_pipe"] is None
    check_outputs(nets, ref)


def test_snapshot_with_unknown_or_unavailable_class(fixture_nets, tmp_path, monkeypatch):
    G, _ = fixture_nets
    path = tmp_path / "snap.pkl"
    legacy.save_network_pkl(path, {"G_ema": G})
    data = torch.load(path, weights_only=True)
    data["modules"]["augment_pipe"] = {"class_name": "stylegan2_ada.training.no_such_module.AugmentPipe",
                                       "init_args": [], "init_kwargs": {}, "state_dict": {}}
    torch.save(data, path)
    monkeypatch.setitem(legacy.CLASS_REGISTRY, "stylegan2_ada.training.no_such_module.AugmentPipe", None)
    with pytest.raises(legacy.NetworkLoadError, match="no_such_module"):
        legacy.load_network_pkl(path)
    for evil in ["Evil", "os.system", "stylegan2_ada.training.networks.FullyConnectedLayer"]:
        data["modules"]["augment_pipe"]["class_name"] = evil
        torch.save(data, path)
        with pytest.raises(legacy.NetworkLoadError, match="not one we know how to rebuild"):
            legacy.load_network_pkl(path)


@persistence.persistent_class
class _PlugInNet(torch.nn.Module):
    """A plug-in's own network, as another package would register it."""

    def __init__(self, width: int = 3):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.arange(float(width)))


def test_register_class_lets_plug_in_networks_round_trip(fixture_nets, tmp_path, monkeypatch):
    G, _ = fixture_nets
    key = f"{__name__}._PlugInNet"
    net = _PlugInNet(width=5)
    with pytest.raises(TypeError, match="not a registered persistent class"):
        legacy.save_network_pkl(tmp_path / "a.pkl", {"G_ema": G, "predictor": net})
    with pytest.raises(TypeError, match="persistent_class"):
        legacy.register_class(torch.nn.Linear)
    monkeypatch.setattr(legacy, "CLASS_REGISTRY", dict(legacy.CLASS_REGISTRY))
    monkeypatch.setattr(legacy, "_TRUSTED_PACKAGES", set(legacy._TRUSTED_PACKAGES))
    assert legacy.register_class(_PlugInNet) is _PlugInNet and legacy.CLASS_REGISTRY[key] is _PlugInNet
    legacy.save_network_pkl(tmp_path / "a.pkl", {"G_ema": G, "predictor": net})
    loaded = legacy.load_network_pkl(tmp_path / "a.pkl")
    assert type(loaded["predictor"]) is _PlugInNet and loaded["predictor"].init_kwargs == {"width": 5}
    assert torch.equal(loaded["predictor"].weight, net.weight)
    del legacy.CLASS_REGISTRY[key]
    with pytest.raises(legacy.NetworkLoadError, match="_PlugInNet"):
        legacy.load_network_pkl(tmp_path / "a.pkl")


def _bad_files(official_bytes, snapshot_bytes):
    yield "empty", b""
    yield "text", b"hello, I am not a network\n"
    yield "truncated official", official_bytes[: len(official_bytes) // 2]
    yield "truncated snapshot", snapshot_bytes[: len(snapshot_bytes) // 2]
    yield "corrupt snapshot", snapshot_bytes[:100] + bytes(200) + snapshot_bytes[300:]
    buf = io.BytesIO()
    torch.save({"some": torch.zeros(2)}, buf)
    yield "foreign torch file", buf.getvalue()
    buf = io.BytesIO()
    torch.save({"G": _Evil(print, "hi")}, buf)
    yield "torch file with code", buf.getvalue()
    yield "not a dict", pickle.dumps([1, 2, 3])


def test_unreadable_files_raise_network_load_error(official, ref, fixture_nets, tmp_path):
    official_bytes = official.write(tmp_path / "o.pkl", ref).read_bytes()
    legacy.save_network_pkl(tmp_path / "s.pkl", {"G_ema": fixture_nets[0]})
    snapshot_bytes = (tmp_path / "s.pkl").read_bytes()
    for what, payload in _bad_files(official_bytes, snapshot_bytes):
        path = tmp_path / "bad.pkl"
        path.write_bytes(payload)
        with pytest.raises(legacy.NetworkLoadError) as info:
            legacy.load_network_pkl(path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message, what
    with pytest.raises(legacy.NetworkLoadError, match="no such file"):
        legacy.load_network_pkl(tmp_path / "missing.pkl")
    assert not official.marker.exists()
