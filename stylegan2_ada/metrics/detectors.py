"""Find, load and check the feature networks behind the published metrics.

Published FID/KID/IS numbers come from one specific Inception-v3 graph and PR/PPL from
one specific VGG16, both released as TorchScript files.  Comparable numbers need those
exact weights, so we never substitute another network: we look for the file in a folder
the user names (``detector_dir`` / ``$MANGANIME_METRIC_NETWORKS``), else in the download
cache, else download it; failing that, one line says what to fetch and where to put it.
The Inception weights are also accepted as pytorch-fid's state dict
(``pt_inception-2015-12-05-*.pth`` in that folder), loaded into ``inception_fid.FIDInceptionV3``.
"""

import fnmatch
import inspect
import os
import urllib.parse
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..dnnlib.util import open_url
from . import MetricError
from .inception_fid import load_pytorch_fid_inception

METRICS_URL_BASE = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
INCEPTION_URL = METRICS_URL_BASE + "inception-2015-12-05.pt"
VGG16_URL = METRICS_URL_BASE + "vgg16.pt"
DETECTOR_DIR_ENV = "MANGANIME_METRIC_NETWORKS"
PYTORCH_FID_PATTERN = "pt_inception-2015-12-05-*.pth"
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"

_loaded: Dict[Tuple[str, int, str], torch.nn.Module] = {}


def _file_name(url: str) -> str:
    return os.path.basename(urllib.parse.urlparse(url).path) or url


def _how_to_fix(name: str) -> str:
    alternative = f" (or pytorch-fid's {PYTORCH_FID_FILE})" if name == _file_name(INCEPTION_URL) else ""
    return (f"download {METRICS_URL_BASE + name}{alternative} and pass --detector-dir DIR (detector_dir=DIR) "
            f"or set {DETECTOR_DIR_ENV}=DIR, DIR being the folder that holds it")


def _pytorch_fid_file(folder: str) -> Optional[str]:
    """pytorch-fid's copy of the Inception weights in ``folder``, if there is one."""
    if not os.path.isdir(folder):
        return None
    names = sorted(name for name in os.listdir(folder) if fnmatch.fnmatch(name, PYTORCH_FID_PATTERN))
    paths = [os.path.join(folder, name) for name in names]
    return next((path for path in paths if os.path.isfile(path)), None)


def _local_detector_file(url: str, detector_dir: Optional[str]) -> Optional[str]:
    """The file in the user's folder that stands for ``url`` (official file first, then pytorch-fid's), if any."""
    folder = detector_dir or os.environ.get(DETECTOR_DIR_ENV) or None
    if folder is None:
        return None
    candidate = os.path.join(folder, _file_name(url))
    if os.path.isfile(candidate):
        return candidate
    return _pytorch_fid_file(folder) if url == INCEPTION_URL else None


def detector_source_name(url: str, detector_dir: Optional[str] = None) -> str:
    """Which weight file computes features for ``url``; part of the statistics cache key, so statistics
    from pytorch-fid's Inception and from the official file are never mixed up."""
    local = _local_detector_file(url, detector_dir)
    return os.path.basename(local) if local is not None else _file_name(url)


def resolve_detector_path(url: str, detector_dir: Optional[str] = None, verbose: bool = False) -> str:
    """Local path of the network ``url`` names: user folder first, then the download cache, then the web.

    For the Inception network the user folder may hold pytorch-fid's ``pt_inception-2015-12-05-*.pth``
    instead of ``inception-2015-12-05.pt``; the official file wins when both are there.
    """
    name = _file_name(url)
    folder = detector_dir or os.environ.get(DETECTOR_DIR_ENV) or None
    local = _local_detector_file(url, detector_dir)
    if local is not None:
        return local
    try:
        return open_url(url, verbose=verbose, return_filename=True)
    except (OSError, ValueError) as err:
        where = f"not in {folder}, and " if folder is not None else ""
        reason = " ".join(str(err).split()).split(f"{url}: ", 1)[-1]  # DownloadError repeats the URL
        raise MetricError(f"feature network {name} is missing: {where}fetching {url} failed ({reason}); "
                          + _how_to_fix(name)) from None


def load_detector(path: str, required_args: Sequence[str] = ("return_features",)) -> torch.nn.Module:
    """The network in ``path``, in eval mode without gradients; one-line errors for the wrong kind of file.

    ``*.pth`` is read as pytorch-fid's Inception state dict (tensors only), anything else as TorchScript.
    """
    if path.endswith(".pth"):
        detector = load_pytorch_fid_inception(path)
    else:
        try:
            detector = torch.jit.load(path, map_location="cpu")
        except RuntimeError as err:
            raise MetricError(f"{path}: not a TorchScript feature network like the official "
                              f"inception-2015-12-05.pt / vgg16.pt ({type(err).__name__})") from None
    check_detector_args(detector, required_args, path)
    for param in detector.parameters():  # ScriptModules have no requires_grad_()
        param.requires_grad_(False)
    return detector.eval()


def _forward_arg_names(detector: torch.nn.Module) -> Optional[List[str]]:
    """Argument names of ``detector.forward`` (TorchScript schema or Python signature); None without one."""
    forward = getattr(detector, "forward", None)
    if isinstance(detector, torch.jit.ScriptModule):
        schema = getattr(forward, "schema", None)
        return None if schema is None else [arg.name for arg in schema.arguments]
    try:
        return list(inspect.signature(forward).parameters)
    except (TypeError, ValueError):  # None, or a callable without a Python signature
        return None


def check_detector_args(detector: torch.nn.Module, required_args: Sequence[str], name: str) -> None:
    """A metric calls the network with keyword flags; a network without them is the wrong file."""
    expected = "expected the official inception-2015-12-05.pt or vgg16.pt (or pytorch-fid's Inception .pth)"
    arg_names = _forward_arg_names(detector)
    if arg_names is None:
        raise MetricError(f"{name}: this network file has no forward(); {expected}")
    missing = [arg for arg in required_args if arg not in arg_names]
    if missing:
        raise MetricError(f"{name}: this network's forward() takes no '{missing[0]}' argument; {expected}")


def get_feature_detector(url: str, device: torch.device = torch.device("cpu"), num_gpus: int = 1, rank: int = 0,
                         verbose: bool = False, detector_dir: Optional[str] = None,
                         required_args: Sequence[str] = ("return_features",)) -> torch.nn.Module:
    """The network ``url`` names, on ``device``, loaded once per process.

    Under torch.distributed rank 0 resolves (downloads) first while the others wait, so
    several processes never fetch the same 100 MB file into the cache at once.
    """
    distributed = num_gpus > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed and rank != 0:
        torch.distributed.barrier()
    try:
        path = resolve_detector_path(url, detector_dir, verbose=verbose and rank == 0)
    finally:
        if distributed and rank == 0:
            torch.distributed.barrier()
    key = (os.path.abspath(path), os.stat(path).st_mtime_ns, str(device))
    if key not in _loaded:
        _loaded[key] = load_detector(path, required_args=()).to(device)
    check_detector_args(_loaded[key], required_args, path)
    return _loaded[key]
