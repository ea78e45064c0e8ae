"""Load and save network snapshots without executing anything stored in them.

Two formats are read by :func:`load_network_pkl`:

* **Official release pickles** (``network-snapshot-*.pkl`` from NVIDIA's StyleGAN2-ADA).
  They store each network with the Python source of its module, and the official
  loader ``exec``s that source.  We never do: a restricted unpickler maps the few
  globals such a file legitimately uses to harmless stand-ins, refuses every other
  global, and turns each network into a plain description (class name, constructor
  kwargs, tensors) from which *our* class is rebuilt.
* **Our own snapshots**, written by :func:`save_network_pkl`: a ``torch.save`` zip
  holding only plain data and tensors, so ``torch.load(weights_only=True)`` reads it.

Either way the caller gets ``{'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs', ...}``
with freshly constructed modules in eval mode.
"""

import _compat_pickle
import collections
import copy
import importlib
import io
import os
import pickle
import re
from typing import Any, BinaryIO, Callable, Dict, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np
import torch

from .dnnlib.util import EasyDict, atomic_write
from .torch_utils import persistence

T = TypeVar("T", bound=type)

SNAPSHOT_FORMAT = "manganime-network"
SNAPSHOT_VERSION = 2  # 2: modules under "modules", classes by "module.Class"; 1: G/D/G_ema/augment_pipe, bare names
READABLE_VERSIONS = (1, 2)
MODULE_KEYS = ("G", "D", "G_ema", "augment_pipe")  # modules every file may hold; snapshots may add their own

# Classes a snapshot may ask us to build, keyed "module.Class". Our own network classes are imported on
# first use only (AugmentPipe pulls in the training code); other packages add theirs with register_class().
_BUILTIN_CLASSES = (
    "stylegan2_ada.training.networks.Generator",
    "stylegan2_ada.training.networks.Discriminator",
    "stylegan2_ada.training.networks.MappingNetwork",
    "stylegan2_ada.training.networks.SynthesisNetwork",
    "stylegan2_ada.training.augment.AugmentPipe",
)
CLASS_REGISTRY: Dict[str, Optional[type]] = {name: None for name in _BUILTIN_CLASSES}

# Official pickles and version-1 snapshots name a class by its bare name.
BARE_CLASS_NAMES: Dict[str, str] = {name.rsplit(".", 1)[1]: name for name in _BUILTIN_CLASSES}

# Packages whose modules a snapshot may cause to be imported, so that their register_class() calls run.
_TRUSTED_PACKAGES = {"stylegan2_ada"}


def class_key(cls: type) -> str:
    """The registry key of ``cls``: ``module.QualifiedName``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def register_class(cls: T) -> T:
    """Allow snapshots to store and rebuild ``cls`` (usable as a class decorator).

    Only registered classes are ever constructed from a file, and only with stored plain-data
    arguments; ``cls`` must be a ``@persistence.persistent_class`` so its constructor arguments are
    known. Registering also trusts the class's top-level package: loading a snapshot that names a
    class there imports its module, so the class registers itself before it is looked up.
    """
    if not persistence.is_persistent(cls):
        raise TypeError(f"{cls.__name__} must be decorated with @persistence.persistent_class to be registered")
    CLASS_REGISTRY[class_key(cls)] = cls
    _TRUSTED_PACKAGES.add(cls.__module__.split(".")[0])
    return cls


# Classes whose official pickles also store constant tensors (filters) that our class recomputes
# on construction: for these, stored tensors we do not have are ignored; missing ones still fail.
EXTRA_TENSORS_IGNORED = frozenset({"stylegan2_ada.training.augment.AugmentPipe"})

PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]


class NetworkLoadError(ValueError):
    """A network file the user gave us cannot be used; the message is one line naming the file."""


class UnsafePickleError(NetworkLoadError, pickle.UnpicklingError):
    """A pickle asked for a global that has no business in a network file (possible code execution)."""


# ---------------------------------------------------------------------------------------------
# Restricted unpickler for official pickles.


def _persistent_obj_stand_in(meta: Any) -> Any:
    """Stand-in for ``torch_utils.persistence._reconstruct_persistent_obj``: keep ``meta`` as data.

    The real function ``exec``s ``meta['module_src']``; we only read ``class_name`` and ``state`` later.
    """
    return meta


def _load_storage_from_bytes(data: bytes) -> Any:
    """Stand-in for ``torch.storage._load_from_bytes`` that cannot run code hidden in ``data``."""
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _rebuild_tensor(storage: Any, storage_offset: int, size: Any, stride: Any, requires_grad: bool,
                    backward_hooks: Any, metadata: Any = None) -> torch.Tensor:
    """Tensor from its storage; hooks and metadata are dropped (we only copy values)."""
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, False, collections.OrderedDict())


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool, backward_hooks: Any, state: Any = None) -> torch.Tensor:
    """A Parameter's values as a plain tensor; its flags, hooks and extra state do not matter here."""
    return data


def _codecs_encode(text: str, encoding: str) -> bytes:
    """Protocol-2 pickles spell ``bytes`` as ``_codecs.encode(str, 'latin1')``; allow only that codec."""
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_scalar() -> Callable[..., Any]:
    """numpy's scalar constructor, wherever this numpy version keeps it."""
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    return scalar


_SAFE_GLOBALS: Dict[tuple, Callable[[], Any]] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): lambda: _persistent_obj_stand_in,
    ("dnnlib.util", "EasyDict"): lambda: EasyDict,
    ("collections", "OrderedDict"): lambda: collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): lambda: _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): lambda: _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): lambda: _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): lambda: _load_storage_from_bytes,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): lambda: np.dtype,
    ("builtins", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
    ("_codecs", "encode"): lambda: _codecs_encode,
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in ``_SAFE_GLOBALS`` and refuses all others."""

    def find_class(self, module: str, name: str) -> Any:
        # Protocol < 3 streams use Python 2 names (__builtin__.set); translate them as pickle itself does.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]()
        if module.startswith("dnnlib.tflib"):
            raise NetworkLoadError(
                "this is an old TensorFlow StyleGAN pickle, which is not supported; "
                "convert it with the official release's legacy.py first")
        raise UnsafePickleError(f"refusing to load global {module}.{name} (not allowed in a network pickle)")


# ---------------------------------------------------------------------------------------------
# From file contents to plain module descriptions.


def _describe_official_network(meta: Any, key: str) -> Dict[str, Any]:
    """Turn an unpickled persistent-object ``meta`` into ``{class_name, init_args, init_kwargs, state_dict}``."""
    if not (isinstance(meta, dict) and meta.get("type") == "class" and "state" in meta):
        raise NetworkLoadError(f"'{key}' is not a persistent network object")
    state = meta["state"]
    return {
        "class_name": meta.get("class_name"),
        "init_args": list(state.get("_init_args", ())),
        "init_kwargs": dict(state.get("_init_kwargs", {})),
        "state_dict": _collect_tensors(meta, prefix=""),
    }


def _collect_tensors(meta: Dict[str, Any], prefix: str) -> Dict[str, torch.Tensor]:
    """Walk ``_parameters``/``_buffers``/``_modules`` recursively; names equal ``state_dict()`` keys."""
    state = meta["state"]
    skip = set(state.get("_non_persistent_buffers_set", ()))
    tensors: Dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, tensor in state.get(group, {}).items():
            if tensor is not None and name not in skip:
                tensors[prefix + name] = tensor
    for name, child in state.get("_modules", {}).items():
        if child is None:
            continue
        if not (isinstance(child, dict) and "state" in child):
            raise NetworkLoadError(f"sub-module '{prefix + name}' is not a persistent network object")
        tensors.update(_collect_tensors(child, prefix + name + "."))
    return tensors


def _read_official(f: BinaryIO) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Unpickle an official release file with the restricted unpickler: (plain data, network descriptions)."""
    data = _SafeUnpickler(f).load()
    if not isinstance(data, dict):
        raise NetworkLoadError(f"expected a dict at the top level, found {type(data).__name__}")
    out = {k: v for k, v in data.items() if k not in MODULE_KEYS}
    out.setdefault("training_set_kwargs", None)
    modules = {key: None if data.get(key) is None else _describe_official_network(data[key], key) for key in MODULE_KEYS}
    return out, modules


def _read_snapshot(f: BinaryIO) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Read our own ``torch.save`` snapshot: (plain data, module descriptions); ``weights_only`` means nothing runs."""
    try:
        data = torch.load(f, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        # torch's own message suggests weights_only=False, exactly what must not be done with a stranger's file.
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(err))
        if found:
            raise UnsafePickleError(f"refusing to load global {found.group(1)} (not allowed in a snapshot)") from err
        raise NetworkLoadError("torch's safe loader refused this snapshot: it is corrupt or not a snapshot") from err
    if not (isinstance(data, dict) and data.get("format") == SNAPSHOT_FORMAT):
        raise NetworkLoadError("this torch file is not a manGANime network snapshot")
    if data.get("version") not in READABLE_VERSIONS:
        raise NetworkLoadError(f"unsupported snapshot version {data.get('version')!r}")
    modules = data.pop("modules", None) or {key: data.pop(key, None) for key in MODULE_KEYS}
    return {k: v for k, v in data.items() if k not in ("format", "version")}, modules


# ---------------------------------------------------------------------------------------------
# From descriptions to our modules.


def _resolve_class_name(class_name: Any) -> str:
    """The registry key for a stored class name: official pickles and old snapshots store bare names."""
    if not isinstance(class_name, str):
        raise NetworkLoadError(f"class {class_name!r} is not one we know how to rebuild")
    return BARE_CLASS_NAMES.get(class_name, class_name)


def _import_class(class_name: Any) -> type:
    """The registered class for ``class_name``, importing its module first when its package is trusted.

    Importing runs only our own modules (trusted packages), never anything from the file; the class
    must then be in ``CLASS_REGISTRY``, so a file cannot reach any other class of those packages.
    """
    key = _resolve_class_name(class_name)
    module_name, _, attr = key.rpartition(".")
    if CLASS_REGISTRY.get(key) is None and module_name.split(".")[0] in _TRUSTED_PACKAGES:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise NetworkLoadError(f"class {key} is not available ({module_name}: {err})") from err
        if key in CLASS_REGISTRY and CLASS_REGISTRY[key] is None:
            CLASS_REGISTRY[key] = getattr(module, attr, None)
    cls = CLASS_REGISTRY.get(key)
    if cls is None:
        if key in CLASS_REGISTRY:
            raise NetworkLoadError(f"class {key} is not available in {module_name}")
        raise NetworkLoadError(f"class {class_name!r} is not one we know how to rebuild "
                               "(import the package that registers it before loading)")
    return cls


def _apply_force_fp16(class_name: str, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Same tweak as the official loader: fp16 in the 4 highest resolutions, activations clamped to 256."""
    kwargs = copy.deepcopy(kwargs)
    if class_name == "stylegan2_ada.training.networks.Generator":
        synthesis_kwargs = dict(kwargs.get("synthesis_kwargs") or {})
        synthesis_kwargs.update(num_fp16_res=4, conv_clamp=256)
        kwargs["synthesis_kwargs"] = synthesis_kwargs
    elif class_name == "stylegan2_ada.training.networks.Discriminator":
        kwargs.update(num_fp16_res=4, conv_clamp=256)
    return kwargs


def _check_tensors(module: torch.nn.Module, tensors: Dict[str, torch.Tensor], key: str) -> None:
    """Strict name and shape match, so a wrong file fails here with the offending tensor named."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        raise NetworkLoadError(f"{key}: tensor '{missing[0]}' is missing ({len(missing)} missing in all)")
    if unexpected:
        raise NetworkLoadError(f"{key}: unexpected tensor '{unexpected[0]}' ({len(unexpected)} unexpected in all)")
    for name, ref in expected.items():
        if not isinstance(tensors[name], torch.Tensor):
            raise NetworkLoadError(f"{key}: '{name}' is not a tensor")
        if tuple(tensors[name].shape) != tuple(ref.shape):
            raise NetworkLoadError(
                f"{key}: tensor '{name}' has shape {tuple(tensors[name].shape)}, expected {tuple(ref.shape)}")


def _build_module(desc: Dict[str, Any], key: str, force_fp16: bool) -> torch.nn.Module:
    """Construct our class from a description and copy its tensors in (eval mode, no grads)."""
    class_name = _resolve_class_name(desc.get("class_name"))
    cls = _import_class(class_name)
    kwargs = dict(desc.get("init_kwargs") or {})
    if force_fp16:
        kwargs = _apply_force_fp16(class_name, kwargs)
    try:
        module = cls(*(desc.get("init_args") or ()), **kwargs)
    except Exception as err:  # a constructor rejecting stored kwargs is a problem of the file
        raise NetworkLoadError(f"{key}: cannot construct {class_name} from the stored arguments ({err})") from err
    tensors = desc.get("state_dict") or {}
    if class_name in EXTRA_TENSORS_IGNORED:
        expected = module.state_dict()
        tensors = {name: tensor for name, tensor in tensors.items() if name in expected}
    _check_tensors(module, tensors, key)
    module.load_state_dict(tensors, strict=True)
    return module.eval().requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# Public API.


def _one_line(err: BaseException, first_sentence: bool = False) -> str:
    """Exception text folded onto one line and kept short (foreign messages: first sentence only)."""
    text = " ".join(str(err).split()) or type(err).__name__
    if first_sentence:
        text = text.split(". ")[0]
    return text if len(text) <= 300 else text[:297] + "..."


def load_network_pkl(f: PathOrFile, force_fp16: bool = False, require: Sequence[str] = ("G_ema",)) -> Dict[str, Any]:
    """Read an official release pickle or one of our snapshots and rebuild its networks.

    Returns a dict with ``G``, ``D``, ``G_ema`` (our modules, eval mode, ``requires_grad=False``,
    ``None`` where the file has none), ``augment_pipe`` (module or ``None``), any other modules a
    plug-in stored (their classes registered with :func:`register_class`),
    ``training_set_kwargs`` (dict or ``None``) and any extra keys the file stores.
    Every problem with the file, including a missing network named in ``require``, raises
    :class:`NetworkLoadError` naming it.
    """
    if isinstance(f, (str, os.PathLike)):
        name = os.fspath(f)
        if not os.path.isfile(name):
            raise NetworkLoadError(f"{name}: no such file")
        try:
            with open(name, "rb") as fobj:
                return load_network_pkl(fobj, force_fp16=force_fp16, require=require)
        except OSError as err:
            raise NetworkLoadError(f"{name}: cannot read network file ({_one_line(err, first_sentence=True)})") from err

    name = str(getattr(f, "name", "") or "network file")
    try:
        if not f.seekable():
            f = io.BytesIO(f.read())
        head = f.read(2)
        f.seek(0)
        result, descriptions = _read_snapshot(f) if head == b"PK" else _read_official(f)
        for key in MODULE_KEYS:
            result[key] = None
        for key, desc in descriptions.items():
            result[key] = None if desc is None else _build_module(desc, key, force_fp16)
    except NetworkLoadError as err:
        raise type(err)(f"{name}: {_one_line(err)}") from err
    except Exception as err:  # anything from deep inside pickle/zip means the file is unusable
        detail = f"{type(err).__name__}: {_one_line(err, first_sentence=True)}"
        raise NetworkLoadError(f"{name}: not a readable network file, truncated or corrupt ({detail})") from err
    for key in require:
        if result.get(key) is None:
            raise NetworkLoadError(f"{name}: the file holds no {key} network")
    result.setdefault("training_set_kwargs", None)
    return result


def _plain(value: Any, where: str) -> Any:
    """Convert kwargs and other snapshot data to types ``torch.load(weights_only=True)`` accepts."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):  # EasyDict and OrderedDict become plain dicts
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    raise TypeError(f"cannot store {type(value).__name__} at {where} in a network snapshot")


def _describe_module(module: torch.nn.Module, key: str) -> Dict[str, Any]:
    """Plain description of one of our registered persistent modules: how to construct it plus its tensors."""
    name = class_key(type(module))
    if name not in CLASS_REGISTRY or CLASS_REGISTRY[name] not in (None, type(module)) \
            or not hasattr(module, "init_kwargs"):
        raise TypeError(f"{key}: {name} is not a registered persistent class (see legacy.register_class)")
    return {
        "class_name": name,
        "init_args": _plain(list(module.init_args), f"{key}.init_args"),
        "init_kwargs": _plain(module.init_kwargs, f"{key}.init_kwargs"),
        "state_dict": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
    }


def save_network_pkl(path: Union[str, "os.PathLike[str]"], snapshot: Dict[str, Any]) -> None:
    """Write ``snapshot`` atomically: every ``torch.nn.Module`` value (G, D, G_ema, augment_pipe or a
    plug-in's own networks) as a rebuildable description, everything else as plain data.

    The file is a ``torch.save`` zip of plain data and tensors, so it loads with
    ``torch.load(path, weights_only=True)``; a temp file + fsync + rename means a crash
    mid-write never leaves a truncated snapshot under ``path``.
    """
    data: Dict[str, Any] = {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, "modules": {}}
    for key, value in snapshot.items():
        if isinstance(value, torch.nn.Module) or (key in MODULE_KEYS and value is None):
            data["modules"][key] = None if value is None else _describe_module(value, key)
        else:
            data[key] = _plain(value, key)
    data.setdefault("training_set_kwargs", None)

    with atomic_write(path) as f:
        torch.save(data, f)
