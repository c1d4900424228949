"""What a vault-service URL is, and which hosts may be reached or served without TLS (loopback only).

Tiny and import-free on purpose: the CLI asks ``is_service_url`` for every command.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

SERVICE_SCHEMES = ("https", "http", "unix")


def is_service_url(url: str | None) -> bool:
    """True for a vault-service URL (https, http or unix), False for a database URL or a path."""
    return bool(url) and urlsplit(str(url)).scheme in SERVICE_SCHEMES


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
