"""Kept so existing imports keep working: every write now goes through ``trainer.common.outputs``,
which writes atomically where it can and checks what is at the path first (see its docstring)."""

from __future__ import annotations

from trainer.common.outputs import open_output as atomic_write
from trainer.common.outputs import write_bytes as atomic_write_bytes
from trainer.common.outputs import write_text as atomic_write_text

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text"]
