"""Generic utilities that know nothing about GANs (the official layout keeps them here)."""

from . import util
from .util import EasyDict, atomic_write, construct_class_by_name, format_time, make_cache_dir_path, open_url

__all__ = ["util", "EasyDict", "atomic_write", "construct_class_by_name", "format_time", "make_cache_dir_path", "open_url"]
