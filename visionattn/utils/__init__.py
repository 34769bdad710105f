"""Small shared helpers: atomic file output, user-facing errors."""
from .errors import UserError
from .io import atomic_write_bytes, atomic_write_json, atomic_write_text, atomic_path

__all__ = ["UserError", "atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]
