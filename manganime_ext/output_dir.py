"""All-or-nothing output folders: a command's results appear at once, or not at all."""

import contextlib
import os
import shutil
import tempfile
from typing import Iterator


class OutputExistsError(FileExistsError):
    """The output is already there and ``force`` was not given."""


@contextlib.contextmanager
def atomic_output_dir(path: str, force: bool = False) -> Iterator[str]:
    """Yield a fresh temp folder next to ``path``; rename it to ``path`` when the block succeeds.

    A crash or an error leaves no partial output (the temp folder is removed), and an existing
    ``path`` is refused up front unless ``force``, in which case it is replaced only at the end.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not force:
        raise OutputExistsError(f"{path}: output already exists (use --force to replace it)")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.tmp-")
    try:
        yield tmp
        if os.path.exists(path):
            old = tmp + ".old"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old) if os.path.isdir(old) else os.remove(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
