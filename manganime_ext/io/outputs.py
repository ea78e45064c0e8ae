"""All-or-nothing outputs: a command's files and folders appear at once, or not at all; plus ``--shard``.

Every file or folder a user would hate to lose half of is written under a temporary name beside its
destination and renamed into place when complete: readers never see a partial output, a crash leaves
the old one (if any) untouched, and an existing output is refused up front unless ``force``.

Temporary names are made here rather than by ``tempfile``, whose folders are always 0700 and files
0600: a finished output is the temporary one renamed, so it must be created with the permissions
the user's umask gives any new file or folder (0755 / 0644 under the usual 022).
"""

import contextlib
import os
import re
import secrets
import shutil
from typing import BinaryIO, Iterator, List, Optional, Sequence, Tuple, TypeVar

Shard = Optional[Tuple[int, int]]  # (i, n): this job does the episodes whose index % n == i
T = TypeVar("T")


class OutputExistsError(FileExistsError):
    """The output is already there and ``force`` was not given."""


class ShardError(ValueError):
    """A ``--shard`` value that is not ``i/n`` with 0 <= i < n."""


def parse_shard(text: Optional[str]) -> Tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n; None -> (0, 1), the whole series."""
    if text is None:
        return 0, 1
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not int(m.group(1)) < int(m.group(2)):
        raise ShardError(f"--shard: expected i/n with 0 <= i < n (e.g. 3/100), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def select_shard(items: Sequence[T], shard: Shard) -> List[T]:
    """The items whose index % n == i (job i of an n-job array takes every n-th); all of them for None."""
    i, n = shard or (0, 1)
    return [x for k, x in enumerate(items) if k % n == i]


def refuse_existing(path: str, force: bool) -> None:
    """Raise OutputExistsError if ``path`` exists and ``force`` is off."""
    if os.path.exists(path) and not force:
        raise OutputExistsError(f"{path}: output already exists (use --force to replace it)")


def _temp_name(beside: str, kind: str) -> str:
    """A hidden, random name in the folder of ``beside``: ``.<name>.<kind>-<hex>``."""
    return os.path.join(os.path.dirname(beside), f".{os.path.basename(beside)}.{kind}-{secrets.token_hex(4)}")


def _fresh_dir(beside: str, kind: str = "tmp") -> str:
    """Create a new, uniquely named folder next to ``beside``, with the umask's permissions; return it."""
    while True:
        path = _temp_name(beside, kind)
        try:
            os.mkdir(path)  # mode 0o777, less the umask
            return path
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_file(path: str) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` only when the ``with`` block succeeds (temp file, fsync, rename).

    Missing parent folders are created, and removed again if the block fails.
    """
    path = os.path.abspath(path)
    created = _make_parents(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = _temp_name(path, "tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # mode 0o666, less the umask
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        for folder in created:
            if not os.listdir(folder):
                os.rmdir(folder)
        raise


def _make_parents(path: str) -> List[str]:
    """Create the missing folders above ``path``; return them, deepest first (for removal on failure)."""
    missing, folder = [], os.path.dirname(path)
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for folder in reversed(missing):
        os.mkdir(folder)  # mode 0o777 less the umask, like any new folder
    return missing


@contextlib.contextmanager
def atomic_output_dir(path: str, force: bool = False) -> Iterator[str]:
    """Yield a fresh temp folder next to ``path``; rename it to ``path`` when the block succeeds.

    A crash or an error leaves no partial output (the temp folder is removed), and an existing
    ``path`` is refused up front unless ``force``, in which case it is replaced only at the end.
    """
    path = os.path.abspath(path)
    refuse_existing(path, force)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = _fresh_dir(path)
    try:
        yield tmp
        _replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class EpisodeOutputs:
    """Where a per-episode stage writes its files; made by ``episode_outputs``."""

    def __init__(self, out: str, folder: str, shard: Shard, force: bool):
        self.out, self.folder, self.shard, self.force = out, folder, shard, force

    @property
    def report(self) -> str:
        """The report path: report.json for a whole run, report-<i>of<n>.json for one shard."""
        name = "report.json" if self.shard is None else "report-{}of{}.json".format(*self.shard)
        return os.path.join(self.folder, name)

    def done(self, episode: str, *names: str) -> bool:
        """Whether a sharded run skips ``episode``: all of its output ``names`` exist and --force is off."""
        if self.shard is None or self.force or not all(os.path.exists(os.path.join(self.out, n)) for n in names):
            return False
        print(f"{episode}: skipped (output already in {self.out}; --force redoes it)")
        return True

    @contextlib.contextmanager
    def episode(self, episode: str) -> Iterator[str]:
        """A folder to write one episode's outputs into; sharded, they are renamed into ``out`` at the end."""
        if self.shard is None:
            yield self.folder
            return
        tmp = _fresh_dir(os.path.join(self.out, episode))
        try:
            yield tmp
            for name in sorted(os.listdir(tmp)):
                _replace(os.path.join(tmp, name), os.path.join(self.out, name))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _replace(src: str, dst: str) -> None:
    """os.replace that also replaces an existing folder (moved aside first, removed after)."""
    if os.path.isdir(dst):
        old = _fresh_dir(dst, "old")
        os.replace(dst, os.path.join(old, "x"))
        os.replace(src, dst)
        shutil.rmtree(old)
    else:
        os.replace(src, dst)


@contextlib.contextmanager
def episode_outputs(out: str, shard: Shard, force: bool) -> Iterator[EpisodeOutputs]:
    """Outputs of a per-episode stage, whole-folder or, with a shard, episode by episode.

    Without a shard: the whole folder appears at once (atomic_output_dir), an existing one is refused
    unless force. With a shard, the N jobs of an array write into the same folder, so it may exist;
    each episode's outputs appear at once (temp folder inside ``out``, renamed), an episode whose
    outputs are all there is skipped unless force (so a rerun finishes what a killed job left), and
    the report is per shard.
    """
    if shard is None:
        with atomic_output_dir(out, force) as tmp:
            yield EpisodeOutputs(out, tmp, None, force)
        return
    out = os.path.abspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputExistsError(f"{out}: output exists and is not a folder")
    os.makedirs(out, exist_ok=True)
    yield EpisodeOutputs(out, out, shard, force)
