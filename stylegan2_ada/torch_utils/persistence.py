"""Remember how a network was built, so a snapshot can rebuild it without storing code.

The official release pickles each network together with the source code of its
module.  We keep only what is needed to rebuild the object: the import path of
its class and the arguments its constructor was called with.  Decorating a
class with :func:`persistent_class` records those arguments on every instance
as ``init_args`` / ``init_kwargs`` (the attribute names the official API uses).
"""

import copy
import functools
from typing import Any, Type, TypeVar

T = TypeVar("T")


def persistent_class(cls: Type[T]) -> Type[T]:
    """Wrap ``cls.__init__`` so each instance records deep copies of its constructor arguments."""
    original_init = cls.__init__

    @functools.wraps(original_init)
    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        # Record before running the constructor: sub-modules created inside it
        # must not see a half-initialised parent, and copies keep later in-place
        # edits of caller-owned dicts out of the record.
        if not hasattr(self, "init_kwargs"):
            object.__setattr__(self, "init_args", copy.deepcopy(args))
            object.__setattr__(self, "init_kwargs", copy.deepcopy(kwargs))
        original_init(self, *args, **kwargs)

    cls.__init__ = recording_init  # type: ignore[method-assign]
    cls._is_persistent = True  # type: ignore[attr-defined]
    return cls


def is_persistent(obj: Any) -> bool:
    """True for instances (or classes) decorated with :func:`persistent_class`."""
    return bool(getattr(obj, "_is_persistent", False))
