from __future__ import annotations

import os

import pytest

from trainer.common.text import fixed, has_control, one_line, plural, printable, shorten, shorten_words


def test_one_line_escapes_every_control_character():
    assert one_line("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert one_line("\x1b[31mred\x7f\x85\x9b") == "\\x1b[31mred\\x7f\\x85\\x9b"  # C0, DEL, C1
    assert one_line("line\u2028sep") == "line\\u2028sep"
    assert one_line(os.fsdecode(b"caf\xe9\n.jpg")) == "caf\\xe9\\n.jpg"  # not UTF-8, then a newline
    assert one_line("café ünïcode 表情.jpg") == "café ünïcode 表情.jpg"  # printable text is untouched
    for char in map(chr, [*range(0x20), *range(0x7F, 0xA0)]):
        assert has_control(char) and len(one_line(char).splitlines()) == 1 and "\t" not in one_line(char)
    assert not has_control("faces")


def test_printable_keeps_control_characters_for_the_csv():
    assert printable("a\nb") == "a\nb"  # the CSV quotes it, exactly
    assert printable(os.fsdecode(b"caf\xe9")) == "caf\\xe9"


def test_shorten_keeps_both_ends():
    name = "/data/" + "x" * 10_000 + "/photo.jpg"
    short = shorten(name, 60)
    assert len(short) == 60 and short.startswith("/data/xx") and short.endswith("/photo.jpg"[-29:])
    assert shorten("short") == "short"
    message = f"Cannot write {name}: the folder does not exist."
    assert len(shorten_words(message)) < 220 and shorten_words(message).endswith(
        ": the folder does not exist."
    )


def test_plural_and_fixed():
    assert [plural(n, "image") for n in (0, 1, 2, 1234)] == [
        "0 images",
        "1 image",
        "2 images",
        "1,234 images",
    ]
    assert plural(1, "folder") == "1 folder" and plural(3, "class", "classes") == "3 classes"
    assert fixed(-0.00001, 4) == "0.0000" and fixed(-0.0, 3) == "0.000"
    assert fixed(-0.5, 2) == "-0.50" and fixed(0.12345, 4) == f"{0.12345:.4f}"
    assert fixed(float("nan"), 2) == "nan"


def test_a_file_the_user_named_that_cannot_be_read_is_one_sentence_naming_it(tmp_path):
    from trainer.common.errors import FaceComicError, read_named_file

    (tmp_path / "list.txt").write_bytes(b"a.jpg\n")
    assert read_named_file(tmp_path / "list.txt", "input list") == b"a.jpg\n"
    locked = tmp_path / "locked.txt"
    locked.write_bytes(b"")
    locked.chmod(0)
    cases = {
        tmp_path / "gone.txt": "does not exist.",
        tmp_path: "is a folder; it must be a file.",
        tmp_path / "bad\nname.txt": "does not exist.",
    }
    if os.geteuid() != 0:
        cases[locked] = "cannot be read (Permission denied)."
    for path, problem in cases.items():
        with pytest.raises(FaceComicError) as caught:
            read_named_file(path, "input list")
        message = str(caught.value)
        assert message == f"The input list {one_line(path)} {problem}"
        assert "\n" not in message
