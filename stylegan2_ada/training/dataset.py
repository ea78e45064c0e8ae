"""Training datasets: a folder or a ``dataset_tool.py`` zip of images, with optional labels.

:class:`Dataset` holds what every dataset shares (the item index with its random subset and
x-flip copies, labels as one-hot rows or float vectors, pickling for DataLoader workers);
subclasses only say how to read one raw image and the raw labels.  :class:`ImageFolderDataset`
reads the format written by the official ``dataset_tool.py``: image files anywhere below the
root, plus an optional ``dataset.json`` ``{"labels": [["00000/img00000000.png", 6], ...]}``.

Problems the user can fix in their data raise :class:`DatasetError` with one line that names
the file; everything else is a bug and may traceback.
"""

import abc
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


class Dataset(torch.utils.data.Dataset, abc.ABC):
    """Base class: maps item indices to raw images, adds x-flip copies and labels.

    Items are ``(image, label)``: ``image`` uint8 ``[C, H, W]``, ``label`` float32 (a one-hot
    row for integer class labels, the stored vector for float labels, shape ``[0]`` without).
    Every item points at one raw image (``_sources``) and says whether it is mirrored
    (``_mirrored``); the subset and the mirror copies are nothing more than that table.
    Subclasses implement :meth:`_read_image` and :meth:`_read_labels`.
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
        num_raw, *item_shape = (int(size) for size in raw_shape)
        self._name = name
        self._item_shape = item_shape  # [C, H, W] of every image
        chosen = _pick_subset(num_raw, max_size, random_seed)
        self._sources = np.tile(chosen, 2 if xflip else 1)
        self._mirrored = np.arange(self._sources.size) >= chosen.size
        # Labels are read here, not on first use: a broken dataset.json fails before training starts.
        self._labels = self._checked_labels(num_raw) if use_labels else np.zeros([num_raw, 0], np.float32)
        self._label_dims = ([int(self._labels.max(initial=-1)) + 1] if self._labels.dtype == np.int64
                            else list(self._labels.shape[1:]))

    # --- what subclasses provide ------------------------------------------------------------

    @abc.abstractmethod
    def _read_image(self, raw_index: int) -> np.ndarray:
        """Raw image ``raw_index`` as uint8 ``[C, H, W]``."""

    @abc.abstractmethod
    def _read_labels(self) -> Optional[np.ndarray]:
        """All raw labels: int64 ``[N]`` class indices, float32 ``[N, D]`` vectors, or None."""

    def close(self) -> None:
        """Release open files; a later read re-opens them."""

    def __getstate__(self) -> Dict[str, Any]:
        """State to pickle; subclasses drop their open file handles here."""
        return dict(self.__dict__)

    # --- labels -------------------------------------------------------------------------------

    def _checked_labels(self, num_raw: int) -> np.ndarray:
        """The subclass's labels after a sanity check; zeros ``[N, 0]`` when it has none."""
        labels = self._read_labels()
        if labels is None:
            return np.zeros([num_raw, 0], np.float32)
        classes = labels.dtype == np.int64 and labels.ndim == 1 and bool(np.all(labels >= 0))
        vectors = labels.dtype == np.float32 and labels.ndim == 2
        assert classes or vectors, "labels: int64 [N] >= 0 or float32 [N, D]"
        assert len(labels) == num_raw, f"{len(labels)} labels for {num_raw} raw images"
        return labels

    def get_label(self, idx: int) -> np.ndarray:
        """Label of item ``idx`` as float32: a one-hot row for class labels, else the vector."""
        stored = self._labels[self._sources[idx]]
        if self.has_onehot_labels:
            return (np.arange(self._label_dims[0]) == stored).astype(np.float32)
        return np.array(stored, np.float32)

    def get_details(self, idx: int) -> EasyDict:
        """Where item ``idx`` comes from: raw index, whether it is flipped, its raw label."""
        source = int(self._sources[idx])
        return EasyDict(raw_idx=source, xflip=bool(self._mirrored[idx]), raw_label=self._labels[source].copy())

    # --- items --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._sources)

    def __getitem__(self, idx: int) -> Tuple[np.ndarray, np.ndarray]:
        pixels = self._read_image(int(self._sources[idx]))
        assert pixels.dtype == np.uint8 and list(pixels.shape) == self._item_shape, \
            f"raw image {list(pixels.shape)} {pixels.dtype}, expected {self._item_shape} uint8"
        if self._mirrored[idx]:
            pixels = pixels[..., ::-1]  # the last axis is W
        return np.ascontiguousarray(pixels), self.get_label(idx)

    # --- properties ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def image_shape(self) -> List[int]:
        """``[C, H, W]``."""
        return list(self._item_shape)

    @property
    def num_channels(self) -> int:
        channels, _height, _width = self._item_shape
        return channels

    @property
    def resolution(self) -> int:
        """Side of the (square) images."""
        _, height, width = self._item_shape
        assert height == width, f"images are {width}x{height}, not square"
        return height

    @property
    def label_shape(self) -> List[int]:
        """``[num_classes]`` for class labels, ``[D]`` for float vectors, ``[0]`` without labels."""
        return list(self._label_dims)

    @property
    def label_dim(self) -> int:
        (width,) = self._label_dims  # labels are rows: one dimension
        return width

    @property
    def has_labels(self) -> bool:
        return any(size != 0 for size in self._label_dims)

    @property
    def has_onehot_labels(self) -> bool:
        return self._labels.dtype == np.int64


def _pick_subset(num_raw: int, max_size: Optional[int], seed: int) -> np.ndarray:
    """Raw indices kept: all of them, or ``max_size`` drawn reproducibly from ``seed``.

    The draw is the first ``max_size`` entries of a seeded permutation, so a given seed keeps
    the same images as the official loader; sorted, so a subset reads its files in order.
    """
    if max_size is None or max_size >= num_raw:
        return np.arange(num_raw, dtype=np.int64)
    order = np.random.RandomState(seed).permutation(num_raw)
    return np.sort(order[:max_size]).astype(np.int64)


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
        self._source = os.fspath(path)
        self._archive: Optional[zipfile.ZipFile] = None  # this process's zip handle, opened on first read
        self._archive_pid: Optional[int] = None
        self._in_zip = self._source.lower().endswith(".zip") and os.path.isfile(self._source)
        if self._in_zip:
            names = sorted(self._zip().namelist())
        elif os.path.isdir(self._source):
            names = _list_folder(self._source)
        elif os.path.exists(self._source):
            raise DatasetError(f"{self._source}: not a folder or a .zip file; give a folder of "
                               "images or a .zip written by dataset_tool.py")
        else:
            raise DatasetError(f"{self._source}: no such file or folder; give a folder of images "
                               "or a .zip written by dataset_tool.py")

        self._names = set(names)
        readable = _image_extensions()
        self._image_names = [n for n in names if os.path.splitext(n)[1].lower() in readable]
        if not self._image_names:
            raise DatasetError(f"{self._source}: no image files found (looked recursively for "
                               ".png, .jpg, ... files); add images or check the path")

        channels, height, width = self._check_headers()
        first = self._where(self._image_names[0])
        if width != height:
            raise DatasetError(f"{first}: images are {width}x{height}, not square; "
                               "crop or resize them to a square")
        if width & (width - 1):
            raise DatasetError(f"{first}: resolution {width} is not a power of two; "
                               "resize the images to e.g. 256x256 or 512x512")
        if resolution is not None and resolution != width:
            raise DatasetError(f"{self._source}: images are {width}x{height} but resolution={resolution} "
                               "was asked for; resize the images or change the resolution")

        stem = os.path.splitext(os.path.basename(os.path.normpath(self._source)))[0]
        super().__init__(name=stem, raw_shape=[len(self._image_names), channels, height, width], **super_kwargs)

    # --- files ----------------------------------------------------------------------------------

    def _where(self, member: str) -> str:
        """How to name ``member`` to the user: a path for folders, zip plus member for zips."""
        return f"{self._source} (member {member})" if self._in_zip else os.path.join(self._source, member)

    def _zip(self) -> zipfile.ZipFile:
        """This process's handle on the zip, opened on first use.

        Re-opened in a forked DataLoader worker: processes sharing one OS file offset would
        corrupt each other's reads.
        """
        if self._archive_pid != os.getpid():
            try:
                self._archive = zipfile.ZipFile(self._source)
            except (zipfile.BadZipFile, OSError) as e:
                raise DatasetError(f"{self._source}: cannot read the zip ({_one_line(e)}); "
                                   "re-create it with dataset_tool.py") from None
            self._archive_pid = os.getpid()
        assert self._archive is not None
        return self._archive

    def _open(self, member: str) -> BinaryIO:
        """Open ``member`` (a relative path with '/' separators) for binary reading."""
        if self._in_zip:
            return self._zip().open(member, "r")
        return open(os.path.join(self._source, member), "rb")

    def close(self) -> None:
        handle, self._archive, self._archive_pid = self._archive, None, None
        if handle is not None:
            handle.close()

    def __getstate__(self) -> Dict[str, Any]:
        return dict(super().__getstate__(), _archive=None, _archive_pid=None)

    # --- images ---------------------------------------------------------------------------------

    def _check_headers(self) -> Tuple[int, int, int]:
        """``(C, H, W)`` shared by all images, read from headers; the first offender is an error."""
        first: Optional[Tuple[int, int, int]] = None
        for member in self._image_names:
            try:
                with self._open(member) as f, PIL.Image.open(f) as image:
                    pil_mode, mode, width, height = image.mode, _decode_mode(image), image.width, image.height
            except _READ_ERRORS as e:
                raise DatasetError(f"{self._where(member)}: not a readable image ({_one_line(e)}); "
                                   "fix or remove it") from None
            if mode is None:
                raise DatasetError(f"{self._where(member)}: PIL mode {pil_mode} (16-bit or float "
                                   "pixels) is not supported; convert the images to 8-bit")
            shape = (_CHANNELS[mode], height, width)
            if first is None:
                first = shape
            elif shape != first:
                raise DatasetError(
                    f"{self._where(member)}: {width}x{height} with {shape[0]} channel(s), but "
                    f"{self._image_names[0]} is {first[2]}x{first[1]} with {first[0]}; all images "
                    "must share one size and channel count")
        assert first is not None
        return first

    def _read_image(self, raw_index: int) -> np.ndarray:
        member = self._image_names[raw_index]
        try:
            with self._open(member) as f, PIL.Image.open(f) as image:
                pixels = np.asarray(image.convert(_decode_mode(image)))
        except _READ_ERRORS as e:
            raise DatasetError(f"{self._where(member)}: cannot decode image ({_one_line(e)}); "
                               "fix or remove it") from None
        # PIL gives [H, W] or [H, W, C]; training wants [C, H, W].
        return pixels.reshape(*pixels.shape[:2], -1).transpose(2, 0, 1)

    # --- labels ---------------------------------------------------------------------------------

    def _read_labels(self) -> np.ndarray:
        where = self._where(LABELS_FILE)
        if LABELS_FILE not in self._names:
            raise DatasetError(f"{where}: not found, but labels were asked for (use_labels=True); "
                               "add it or train without labels")
        try:
            with self._open(LABELS_FILE) as f:
                content = json.loads(f.read())
        except _READ_ERRORS as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors.
            raise DatasetError(f"{where}: not readable JSON ({_one_line(e)}); fix the file") from None
        if not isinstance(content, dict):
            raise DatasetError(f'{where}: expected {{"labels": [[file, label], ...]}}; fix the file')
        return parse_labels(content.get("labels"), self._image_names, where)


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
