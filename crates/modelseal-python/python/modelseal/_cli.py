"""The ``modelseal`` console script: the Rust CLI itself, run in this process."""
from __future__ import annotations

import signal
import sys


def main() -> None:
    # Python turns ctrl-c into an exception it only raises when Python code runs; the
    # command runs in Rust from start to end, so SIGINT gets the default action, as it
    # has for the binary.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from ._native import run_cli

    sys.exit(run_cli(["modelseal", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
