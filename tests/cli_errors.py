"""The CLI's user-error contract, checked the same way by every test module that needs it."""

from __future__ import annotations

import pytest

from retina.cli import main


def expect_user_error(argv: list[str], capsys, *needles: str) -> str:
    """Run ``retina ARGV``; it must exit 2 with one last line ``error: ...`` holding each needle. Returns the line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: ")
    for needle in needles:
        assert needle in error, error
    return error
