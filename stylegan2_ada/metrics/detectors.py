"""Find, load and check the TorchScript feature networks behind the published metrics.

Published FID/KID/IS numbers come from one specific Inception-v3 graph and PR/PPL from
one specific VGG16, both released as TorchScript files.  Comparable numbers need those
exact files, so we never substitute another network: we look for the file in a folder
the user names (``detector_dir`` / ``$MANGANIME_METRIC_NETWORKS``), else in the download
cache, else download it; failing that, one line says what to fetch and where to put it.
"""

import fnmatch
import os
import urllib.parse
from typing import Dict, Optional, Sequence, Tuple

import torch

from ..dnnlib.util import open_url
from . import MetricError

METRICS_URL_BASE = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
INCEPTION_URL = METRICS_URL_BASE + "inception-2015-12-05.pt"
VGG16_URL = METRICS_URL_BASE + "vgg16.pt"
DETECTOR_DIR_ENV = "MANGANIME_METRIC_NETWORKS"
PYTORCH_FID_PATTERN = "pt_inception-2015-12-05-*.pth"

_loaded: Dict[Tuple[str, int, str], torch.jit.ScriptModule] = {}


def _file_name(url: str) -> str:
    return os.path.basename(urllib.parse.urlparse(url).path) or url


def _how_to_fix(name: str) -> str:
    return (f"download {METRICS_URL_BASE + name} and pass --detector-dir DIR (detector_dir=DIR) "
            f"or set {DETECTOR_DIR_ENV}=DIR, DIR being the folder that holds it")


def _refuse_pytorch_fid(path: str) -> None:
    """pytorch-fid's state dict holds the same Inception weights, but building that graph is not done yet."""
    if fnmatch.fnmatch(os.path.basename(path), PYTORCH_FID_PATTERN):
        raise MetricError(f"{path}: pytorch-fid state dicts are not supported yet; "
                          + _how_to_fix("inception-2015-12-05.pt"))


def resolve_detector_path(url: str, detector_dir: Optional[str] = None, verbose: bool = False) -> str:
    """Local path of the network ``url`` names: user folder first, then the download cache, then the web."""
    name = _file_name(url)
    folder = detector_dir or os.environ.get(DETECTOR_DIR_ENV) or None
    if folder is not None:
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
        if os.path.isdir(folder) and name.startswith("inception"):
            for other in sorted(os.listdir(folder)):
                _refuse_pytorch_fid(os.path.join(folder, other))
    try:
        return open_url(url, verbose=verbose, return_filename=True)
    except (OSError, ValueError) as err:
        where = f"not in {folder}, and " if folder is not None else ""
        reason = " ".join(str(err).split()).split(f"{url}: ", 1)[-1]  # DownloadError repeats the URL
        raise MetricError(f"feature network {name} is missing: {where}fetching {url} failed ({reason}); "
                          + _how_to_fix(name)) from None


def load_detector(path: str, required_args: Sequence[str] = ("return_features",)) -> torch.jit.ScriptModule:
    """``torch.jit.load`` with one-line errors for files that are not the official kind of network."""
    _refuse_pytorch_fid(path)
    try:
        detector = torch.jit.load(path, map_location="cpu")
    except RuntimeError as err:
        raise MetricError(f"{path}: not a TorchScript feature network like the official "
                          f"inception-2015-12-05.pt / vgg16.pt ({type(err).__name__})") from None
    check_detector_args(detector, required_args, path)
    for param in detector.parameters():  # ScriptModules have no requires_grad_()
        param.requires_grad_(False)
    return detector.eval()


def check_detector_args(detector: torch.jit.ScriptModule, required_args: Sequence[str], name: str) -> None:
    """A metric calls the network with keyword flags; a network without them is the wrong file."""
    schema = getattr(getattr(detector, "forward", None), "schema", None)
    if schema is None:
        raise MetricError(f"{name}: this TorchScript file has no forward(); "
                          "expected the official inception-2015-12-05.pt or vgg16.pt")
    arg_names = [arg.name for arg in schema.arguments]
    missing = [arg for arg in required_args if arg not in arg_names]
    if missing:
        raise MetricError(f"{name}: this TorchScript network's forward() takes no '{missing[0]}' argument; "
                          "expected the official inception-2015-12-05.pt or vgg16.pt")


def get_feature_detector(url: str, device: torch.device = torch.device("cpu"), num_gpus: int = 1, rank: int = 0,
                         verbose: bool = False, detector_dir: Optional[str] = None,
                         required_args: Sequence[str] = ("return_features",)) -> torch.jit.ScriptModule:
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
