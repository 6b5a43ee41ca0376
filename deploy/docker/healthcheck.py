"""Container HEALTHCHECK for the radlabel image: GET /healthz on the port the radlabel process serves.

The port comes from connector.settings exactly as the process reads it (RADLABEL_HTTP_PORT, else the YAML file
named by RADLABEL_CONFIG, else 8080), so the check follows the deployment's configuration instead of assuming
8080. Exit 0 when /healthz answers 200, 1 otherwise (Docker's contract), with one line saying why.
Kubernetes does not use this: its probes call /healthz and /readyz directly (deploy/k8s).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def configured_port() -> int:
    from connector.settings import load_settings

    return load_settings().http_port


def main() -> int:
    try:
        port = configured_port()
    except Exception as exc:  # a broken settings file: the process itself will not be healthy either
        print(f"unhealthy: cannot read settings ({type(exc).__name__}: {exc})")
        return 1
    if port < 0:
        print("unhealthy: http_port is -1 (health endpoint off); set RADLABEL_HTTP_PORT or drop the HEALTHCHECK")
        return 1
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - fixed loopback URL
            detail = response.read(200).decode("utf-8", "replace").strip()
            print(f"healthy: {url} {response.status} {detail}")
            return 0
    except urllib.error.HTTPError as exc:
        print(f"unhealthy: {url} {exc.code} {exc.read(200).decode('utf-8', 'replace').strip()}")
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url} {exc}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
