"""Small shared helpers: atomic file output, user-facing errors, preserved random states, counted nouns."""
from .console import counted
from .errors import UserError
from .io import atomic_write_bytes, atomic_write_json, atomic_write_text, atomic_path
from .random_state import preserved_random_state

__all__ = ["UserError", "counted", "atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
           "preserved_random_state"]
