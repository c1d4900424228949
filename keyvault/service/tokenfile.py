"""Where the CLI keeps its service tokens: one 0600 JSON file per (service URL, user), like `vault login`.

Files live in ``<user data dir>/ifadit/tokens/`` (a 0700 folder), named by a hash of URL and user, so
``--user`` picks the token as it picks the passphrase on a local vault. ``IFADIT_TOKEN`` overrides the
file (scripts, CI). A token is no secret of the vault: it expires, the service can revoke it, and it
opens nothing the user's own passphrase would not.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from platformdirs import user_data_dir

TOKEN_ENV = "IFADIT_TOKEN"


@dataclass(frozen=True)
class StoredToken:
    url: str
    user: str
    token: str
    expires: datetime

    def __repr__(self) -> str:
        return f"StoredToken(url={self.url!r}, user={self.user!r}, expires={self.expires.isoformat()})"


def token_dir() -> Path:
    return Path(user_data_dir("ifadit")) / "tokens"


def token_path(url: str, user: str) -> Path:
    name = hashlib.sha256(f"{url.rstrip('/')}\n{user}".encode()).hexdigest()[:32]
    return token_dir() / f"{name}.json"


def save(stored: StoredToken) -> Path:
    """Write the token file owner-only (temporary file and rename); return its path."""
    folder = token_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = token_path(stored.url, stored.user)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(
            {
                "url": stored.url,
                "user": stored.user,
                "token": stored.token,
                "expires": stored.expires.isoformat(),
            },
            handle,
        )
    os.replace(temporary, path)
    return path


def load(url: str, user: str) -> str | None:
    """The token for (url, user): IFADIT_TOKEN, else the stored file, else None."""
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    try:
        data = json.loads(token_path(url, user).read_text())
    except (OSError, ValueError):
        return None
    token = data.get("token") if isinstance(data, dict) else None
    return token if isinstance(token, str) else None


def forget(url: str, user: str) -> bool:
    """Delete the stored token file; True when there was one."""
    try:
        token_path(url, user).unlink()
    except FileNotFoundError:
        return False
    return True
