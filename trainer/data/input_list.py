"""``--input-list FILE``: images named one per line, as paths or URL-style paths, beside (or
instead of) the paths on the command line."""

from __future__ import annotations

import os

from trainer.common.errors import read_named_file

URL_SCHEMES_LOCAL = ("file://",)


def read_input_list(path: str | os.PathLike[str]) -> list[str]:
    """The entries of ``path``: one per line, blank lines left out, names kept exact (bytes that
    are not UTF-8 are kept as escapes, as file names are). A missing or unreadable list is one
    sentence."""
    data = read_named_file(path, "input list")
    lines = data.decode("utf-8", "surrogateescape").split("\n")
    return [line.removesuffix("\r") for line in lines if line.strip()]


def is_remote(entry: str) -> bool:
    """A URL that is not a local file (``s3://``, ``gs://``, ``http://``…): read with fsspec."""
    return "://" in entry and not entry.startswith(URL_SCHEMES_LOCAL)


def local_path(entry: str) -> str:
    """``file:///x.jpg`` -> ``/x.jpg``; a plain path as it is."""
    return entry.removeprefix("file://")
