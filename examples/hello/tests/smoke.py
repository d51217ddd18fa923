"""Smoke test of a live instance: `kiln test` starts one from the artifact and
passes its URL in $KILN_TARGET_URL.

It checks that the instance becomes ready and that / answers with the app's
version. It sends one request, so it says nothing about error rates: judging
those under real traffic is the canary analysis' job (the demo's v3).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def main() -> int:
    base = os.environ["KILN_TARGET_URL"]
    status, _ = get(base + "/healthz")
    if status != 200:
        print(f"/healthz answered {status}")
        return 1
    status, body = get(base + "/")
    try:
        version = json.loads(body)["version"]
    except (ValueError, KeyError, TypeError):
        print(f"/ answered {status} without a version: {body[:200]!r}")
        return 1
    print(f"ready; / answered {status} with version {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
