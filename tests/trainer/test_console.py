import os

from trainer.common.console import PipeSafeWriter


def test_a_closed_pipe_stops_the_lines_but_not_the_caller():
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    writer = PipeSafeWriter(stream)
    try:
        writer.line("first")
        assert os.read(read_end, 100) == b"first\n"
        os.close(read_end)  # the reader went away, as `| head` does after its lines
        writer.line("second")
        assert writer.closed
        writer.line("third")  # nothing raised, nothing written
    finally:
        stream.close()
