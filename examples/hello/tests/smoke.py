"""Smoke test of a live instance: `kiln test` starts one from the artifact and
passes its URL in $KILN_TARGET_URL. Exit 0 when / and /healthz answer 200."""

from __future__ import annotations

import json
import os
import sys
import urllib.request


def main() -> int:
    base = os.environ["KILN_TARGET_URL"]
    for path in ("/healthz", "/"):
        with urllib.request.urlopen(base + path, timeout=5) as response:
            if response.status != 200:
                print(f"{path}: {response.status}")
                return 1
            print(f"{path}: 200 {json.loads(response.read())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
