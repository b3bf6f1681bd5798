"""What every CLI error must look like."""

from __future__ import annotations


def assert_one_error_line(err: str, *fragments: str) -> None:
    """One line on stderr, no traceback, naming every fragment."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("opseq: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]
