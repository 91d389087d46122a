"""Container health check without curl: ``python -m apps.common.healthcheck [URL]``.

Exits 0 when URL (default ``http://127.0.0.1:$PORT/health``) answers 200
within ``HEALTHCHECK_TIMEOUT`` seconds (default 3), else prints why and exits
1. Standard library only, so it works in every image; meant for a Docker
``HEALTHCHECK`` or an ECS container health check
(``["CMD", "python", "-m", "apps.common.healthcheck"]``).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def check(url: str, timeout: float) -> str | None:
    """None when healthy, else the reason."""
    # No proxies: the check is always about this container.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return str(getattr(error, "reason", error))


def main(argv: list[str]) -> int:
    url = argv[0] if argv else f"http://127.0.0.1:{os.environ.get('PORT', '8080')}/health"
    if not url.startswith(("http://", "https://")):
        print(f"healthcheck: {url!r} is not an http(s) URL", file=sys.stderr)
        return 2
    timeout = float(os.environ.get("HEALTHCHECK_TIMEOUT", "3"))
    reason = check(url, timeout)
    if reason:
        print(f"healthcheck: {url} unhealthy: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
