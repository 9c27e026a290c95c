"""One exception type for mistakes a user can fix, and the CLI wrapper that turns it into one line."""
from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """An error the user can fix; the message names the problem and the fix."""


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a CLI entry point: a UserError becomes one line on stderr and exit code 2, never a traceback."""
    try:
        code = main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
