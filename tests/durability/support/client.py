"""A client that starts runs in a loop and prints each run id once ``start`` returned.

``python -m tests.durability.support.client STORE_URL`` — the test kills it with
SIGKILL mid-loop and checks that every printed (acknowledged) run is in the store.
"""

from __future__ import annotations

import sys

import surefoot as sf
from tests.durability.support.flows import register

LIMIT = 100_000


def main(store_url: str) -> None:
    app = register(sf.App("intake", store=store_url))
    for n in range(LIMIT):
        handle = app.start("echo", n)
        sys.stdout.write(f"{handle.run_id}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])
