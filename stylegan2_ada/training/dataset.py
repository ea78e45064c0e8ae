"""Training datasets: a folder or a ``dataset_tool.py`` zip of images, with optional labels.

:class:`Dataset` holds what every dataset shares (the item index with its random subset and
x-flip copies, labels as one-hot rows or float vectors, pickling for DataLoader workers);
subclasses only say how to read one raw image and the raw labels.  :class:`ImageFolderDataset`
reads the format written by the official ``dataset_tool.py``: image files anywhere below the
root, plus an optional ``dataset.json`` ``{"labels": [["00000/img00000000.png", 6], ...]}``.

Problems the user can fix in their data raise :class:`DatasetError` with one line that names
the file; everything else is a bug and may traceback.
"""

import json
import os
import zipfile
import zlib
from typing import Any, BinaryIO, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import PIL.Image
import torch

from ..dnnlib import EasyDict

LABELS_FILE = "dataset.json"

# What can go wrong while reading one file from a folder or zip and decoding it with PIL.
_READ_ERRORS = (OSError, ValueError, EOFError, SyntaxError, zipfile.BadZipFile, zlib.error,
                PIL.Image.DecompressionBombError)

# PIL modes -> the mode we decode to.  Training wants 8-bit channels: greyscale stays one
# channel, anything with alpha becomes RGBA, other colour modes (palette, CMYK, ...) RGB.
_GREY_MODES = {"1", "L"}
_COLOUR_MODES = {"RGB", "P", "CMYK", "YCbCr"}
_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}


class DatasetError(ValueError):
    """The user's dataset cannot be used as given; the message is one line naming the file."""


def _one_line(error: BaseException) -> str:
    """An exception's message folded onto one line, so that our own messages stay one line.

    PIL's "cannot identify image file <file object>" names a file object, not the file, so it
    is said plainly instead (our message names the file).
    """
    if isinstance(error, PIL.UnidentifiedImageError):
        return "not a format PIL can read"
    return " ".join(str(error).split()) or type(error).__name__


class Dataset(torch.utils.data.Dataset):
    """Base class: maps item indices to raw images, adds x-flip copies and labels.

    Items are ``(image, label)``: ``image`` uint8 ``[C, H, W]``, ``label`` float32 (a one-hot
    row for integer class labels, the stored vector for float labels, shape ``[0]`` without).
    """

    def __init__(
        self,
        name: str,                       # Dataset name, shown in logs and run directories.
        raw_shape: Sequence[int],        # Shape of all raw images together: [N, C, H, W].
        max_size: Optional[int] = None,  # Keep a reproducible random subset of this many raw items; None = all.
        use_labels: bool = False,        # Load labels? False: every label has shape [0].
        xflip: bool = False,             # Append a horizontally flipped copy of every item (doubles len).
        random_seed: int = 0,            # Seed that picks the max_size subset.
    ) -> None:
        self._name = name
        self._raw_shape = list(raw_shape)
        self._use_labels = use_labels
        self._raw_labels: Optional[np.ndarray] = None
        self._label_shape: Optional[List[int]] = None

        num_raw = self._raw_shape[0]
        self._raw_idx = np.arange(num_raw, dtype=np.int64)
        if max_size is not None and num_raw > max_size:
            # Sorted, so that a subset reads the underlying files in order.
            chosen = np.random.RandomState(random_seed).permutation(num_raw)[:max_size]
            self._raw_idx = np.sort(chosen).astype(np.int64)
        self._xflip = np.zeros(self._raw_idx.size, dtype=np.uint8)
        if xflip:
            self._raw_idx = np.concatenate([self._raw_idx, self._raw_idx])
            self._xflip = np.concatenate([self._xflip, np.ones_like(self._xflip)])

        if use_labels:
            self._get_raw_labels()  # Fail now, not in the middle of training.

    # --- what subclasses provide ------------------------------------------------------------

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        """Raw image ``raw_idx`` as uint8 ``[C, H, W]``."""
        raise NotImplementedError

    def _load_raw_labels(self) -> Optional[np.ndarray]:
        """All raw labels: int64 ``[N]`` class indices, float32 ``[N, D]`` vectors, or None."""
        raise NotImplementedError

    def close(self) -> None:
        """Release open files; a later read re-opens them."""

    def __getstate__(self) -> Dict[str, Any]:
        """State to pickle; subclasses drop their open file handles here."""
        return dict(self.__dict__)

    # --- labels -------------------------------------------------------------------------------

    def _get_raw_labels(self) -> np.ndarray:
        """Raw labels of every raw item, loaded once; zeros ``[N, 0]`` when labels are off."""
        if self._raw_labels is None:
            raw = self._load_raw_labels() if self._use_labels else None
            if raw is None:
                raw = np.zeros([self._raw_shape[0], 0], dtype=np.float32)
            assert raw.shape[0] == self._raw_shape[0], "one label per raw image"
            assert (raw.dtype == np.int64 and raw.ndim == 1 and np.all(raw >= 0)) or \
                (raw.dtype == np.float32 and raw.ndim == 2), "labels: int64 [N] >= 0 or float32 [N, D]"
            self._raw_labels = raw
        return self._raw_labels

    def get_label(self, idx: int) -> np.ndarray:
        """Label of item ``idx`` as float32: a one-hot row for class labels, else the vector."""
        label = self._get_raw_labels()[self._raw_idx[idx]]
        if label.dtype == np.int64:
            onehot = np.zeros(self.label_shape, dtype=np.float32)
            onehot[label] = 1
            return onehot
        return label.copy()

    def get_details(self, idx: int) -> EasyDict:
        """Where item ``idx`` comes from: raw index, whether it is flipped, its raw label."""
        raw_idx = int(self._raw_idx[idx])
        return EasyDict(raw_idx=raw_idx, xflip=bool(self._xflip[idx]),
                        raw_label=self._get_raw_labels()[raw_idx].copy())

    # --- items --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._raw_idx.size)

    def __getitem__(self, idx: int) -> Tuple[np.ndarray, np.ndarray]:
        image = self._load_raw_image(int(self._raw_idx[idx]))
        assert image.dtype == np.uint8 and list(image.shape) == self.image_shape, \
            f"raw image {list(image.shape)} {image.dtype}, expected {self.image_shape} uint8"
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return np.ascontiguousarray(image), self.get_label(idx)

    # --- properties ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def image_shape(self) -> List[int]:
        """``[C, H, W]``."""
        return list(self._raw_shape[1:])

    @property
    def num_channels(self) -> int:
        return self.image_shape[0]

    @property
    def resolution(self) -> int:
        """Side of the (square) images."""
        _, height, width = self.image_shape
        assert height == width, f"images are {width}x{height}, not square"
        return height

    @property
    def label_shape(self) -> List[int]:
        """``[num_classes]`` for class labels, ``[D]`` for float vectors, ``[0]`` without labels."""
        if self._label_shape is None:
            raw = self._get_raw_labels()
            if raw.dtype == np.int64:
                self._label_shape = [int(raw.max()) + 1]
            else:
                self._label_shape = list(raw.shape[1:])
        return list(self._label_shape)

    @property
    def label_dim(self) -> int:
        assert len(self.label_shape) == 1
        return self.label_shape[0]

    @property
    def has_labels(self) -> bool:
        return any(size != 0 for size in self.label_shape)

    @property
    def has_onehot_labels(self) -> bool:
        return self._get_raw_labels().dtype == np.int64


class ImageFolderDataset(Dataset):
    """Images in a folder or a ``.zip`` (as ``dataset_tool.py`` writes), found recursively.

    Every image is checked at construction from its header alone (PIL reads no pixels until
    asked), so mixed sizes or channel counts fail at once rather than mid-training.
    """

    def __init__(
        self,
        path: str,                         # Folder or .zip of images, optionally with dataset.json.
        resolution: Optional[int] = None,  # Expected image side; None = whatever the images are.
        **super_kwargs: Any,               # max_size, use_labels, xflip, random_seed: see Dataset.
    ) -> None:
        self._path = os.fspath(path)
        self._zipfile: Optional[zipfile.ZipFile] = None
        self._zip_pid: Optional[int] = None
        if not os.path.exists(self._path):
            raise DatasetError(f"{self._path}: no such file or folder; give a folder of images "
                               "or a .zip written by dataset_tool.py")
        if os.path.isdir(self._path):
            self._type = "dir"
            all_fnames = _list_folder(self._path)
        elif self._path.lower().endswith(".zip"):
            self._type = "zip"
            all_fnames = sorted(self._zip().namelist())
        else:
            raise DatasetError(f"{self._path}: not a folder or a .zip file; give a folder of "
                               "images or a .zip written by dataset_tool.py")

        self._all_fnames = set(all_fnames)
        image_exts = _image_extensions()
        self._image_fnames = [f for f in all_fnames if os.path.splitext(f)[1].lower() in image_exts]
        if not self._image_fnames:
            raise DatasetError(f"{self._path}: no image files found (looked recursively for "
                               ".png, .jpg, ... files); add images or check the path")

        channels, height, width = self._check_headers()
        first = self._where(self._image_fnames[0])
        if width != height:
            raise DatasetError(f"{first}: images are {width}x{height}, not square; "
                               "crop or resize them to a square")
        if width & (width - 1):
            raise DatasetError(f"{first}: resolution {width} is not a power of two; "
                               "resize the images to e.g. 256x256 or 512x512")
        if resolution is not None and resolution != width:
            raise DatasetError(f"{self._path}: images are {width}x{height} but resolution={resolution} "
                               "was asked for; resize the images or change the resolution")

        name = os.path.splitext(os.path.basename(os.path.normpath(self._path)))[0]
        raw_shape = [len(self._image_fnames), channels, height, width]
        super().__init__(name=name, raw_shape=raw_shape, **super_kwargs)

    # --- files ----------------------------------------------------------------------------------

    def _where(self, fname: str) -> str:
        """How to name ``fname`` to the user: a path for folders, zip plus member for zips."""
        if self._type == "dir":
            return os.path.join(self._path, fname)
        return f"{self._path} (member {fname})"

    def _zip(self) -> zipfile.ZipFile:
        """This process's handle on the zip, opened on first use.

        Re-opened in a forked DataLoader worker: processes sharing one OS file offset would
        corrupt each other's reads.
        """
        if self._zipfile is None or self._zip_pid != os.getpid():
            try:
                self._zipfile = zipfile.ZipFile(self._path)
            except (zipfile.BadZipFile, OSError) as e:
                raise DatasetError(f"{self._path}: cannot read the zip ({_one_line(e)}); "
                                   "re-create it with dataset_tool.py") from None
            self._zip_pid = os.getpid()
        return self._zipfile

    def _open_file(self, fname: str) -> BinaryIO:
        """Open ``fname`` (a relative path with '/' separators) for binary reading."""
        if self._type == "dir":
            return open(os.path.join(self._path, fname), "rb")
        return self._zip().open(fname, "r")

    def close(self) -> None:
        if self._zipfile is not None:
            self._zipfile.close()
        self._zipfile = None
        self._zip_pid = None

    def __getstate__(self) -> Dict[str, Any]:
        return dict(super().__getstate__(), _zipfile=None, _zip_pid=None)

    # --- images ---------------------------------------------------------------------------------

    def _check_headers(self) -> Tuple[int, int, int]:
        """``(C, H, W)`` shared by all images, read from headers; the first offender is an error."""
        first: Optional[Tuple[int, int, int]] = None
        for fname in self._image_fnames:
            try:
                with self._open_file(fname) as f, PIL.Image.open(f) as image:
                    pil_mode, mode, width, height = image.mode, _decode_mode(image), image.width, image.height
            except _READ_ERRORS as e:
                raise DatasetError(f"{self._where(fname)}: not a readable image ({_one_line(e)}); "
                                   "fix or remove it") from None
            if mode is None:
                raise DatasetError(f"{self._where(fname)}: PIL mode {pil_mode} (16-bit or float "
                                   "pixels) is not supported; convert the images to 8-bit")
            shape = (_CHANNELS[mode], height, width)
            if first is None:
                first = shape
            elif shape != first:
                raise DatasetError(
                    f"{self._where(fname)}: {width}x{height} with {shape[0]} channel(s), but "
                    f"{self._image_fnames[0]} is {first[2]}x{first[1]} with {first[0]}; all images "
                    "must share one size and channel count")
        assert first is not None
        return first

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        fname = self._image_fnames[raw_idx]
        try:
            with self._open_file(fname) as f, PIL.Image.open(f) as image:
                pixels = np.asarray(image.convert(_decode_mode(image)))
        except _READ_ERRORS as e:
            raise DatasetError(f"{self._where(fname)}: cannot decode image ({_one_line(e)}); "
                               "fix or remove it") from None
        if pixels.ndim == 2:
            pixels = pixels[:, :, np.newaxis]
        return pixels.transpose(2, 0, 1)

    # --- labels ---------------------------------------------------------------------------------

    def _load_raw_labels(self) -> np.ndarray:
        where = self._where(LABELS_FILE)
        if LABELS_FILE not in self._all_fnames:
            raise DatasetError(f"{where}: not found, but labels were asked for (use_labels=True); "
                               "add it or train without labels")
        try:
            with self._open_file(LABELS_FILE) as f:
                content = json.loads(f.read())
        except _READ_ERRORS as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors.
            raise DatasetError(f"{where}: not readable JSON ({_one_line(e)}); fix the file") from None
        if not isinstance(content, dict):
            raise DatasetError(f'{where}: expected {{"labels": [[file, label], ...]}}; fix the file')
        return parse_labels(content.get("labels"), self._image_fnames, where)


def parse_labels(labels: Any, fnames: Sequence[str], where: str) -> np.ndarray:
    """The ``labels`` entry of ``dataset.json`` as an array in ``fnames`` order.

    Integer labels are class indices (int64 ``[N]``); lists of numbers are float vectors
    (float32 ``[N, D]``).  ``where`` names the file in error messages.
    """
    if labels is None:
        raise DatasetError(f'{where}: "labels" is null or missing, but labels were asked for '
                           "(use_labels=True); add labels or train without them")
    try:
        table = {str(key).replace("\\", "/"): value for key, value in dict(labels).items()}
    except (TypeError, ValueError):
        raise DatasetError(f'{where}: "labels" must be a list of [file, label] pairs; fix the file') from None

    values = []
    for fname in fnames:
        if fname not in table:
            raise DatasetError(f"{where}: no label for image {fname}; label every image")
        values.append(_label_value(table[fname], fname, where))
    first = values[0]
    for fname, value in zip(fnames, values):
        if type(value) is not type(first) or (isinstance(value, list) and len(value) != len(first)):
            raise DatasetError(f"{where}: label of {fname} ({value}) differs in shape from that of "
                               f"{fnames[0]} ({first}); give every image the same kind of label")
    if isinstance(first, int):
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=np.float32).reshape(len(values), len(first))


def _label_value(value: Any, fname: str, where: str) -> Any:
    """One label checked: a class index (int >= 0) or a list of numbers (as floats)."""
    def is_number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, list) and all(is_number(x) for x in value):
        return [float(x) for x in value]
    raise DatasetError(f"{where}: label of {fname} ({value!r}) is neither a class index >= 0 "
                       "nor a list of numbers; fix the file")


def _decode_mode(image: PIL.Image.Image) -> Optional[str]:
    """The mode ``image`` is decoded to; None for 16-bit or float modes (refused, not truncated)."""
    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        return "RGBA"
    if image.mode in _GREY_MODES:
        return "L"
    if image.mode in _COLOUR_MODES:
        return "RGB"
    return None


def _list_folder(root: str) -> List[str]:
    """Every file below ``root`` as a sorted relative path with '/' separators (as in zips)."""
    found = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for filename in filenames:
            relpath = os.path.relpath(os.path.join(dirpath, filename), root)
            found.append(relpath.replace(os.sep, "/"))
    return sorted(found)


def _image_extensions() -> Set[str]:
    """File extensions (lower case, with dot) of every format PIL can open."""
    return {ext for ext, fmt in PIL.Image.registered_extensions().items() if fmt in PIL.Image.OPEN}
