"""Options shared by `vault init --service` and `vault serve`: the HSM that holds the KEK's wrapping key.

The PIN comes from ``--hsm-pin-file`` or ``IFADIT_HSM_PIN`` (the service's environment), never from an
option value that would show in `ps` or the shell history.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from keyvault.service.hsm import HsmConfig

HSM_PIN_ENV = "IFADIT_HSM_PIN"
DEFAULT_HSM_KEY_LABEL = "ifadit-kek-wrap"


def hsm_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --hsm-module, --hsm-token, --hsm-key-label and --hsm-pin-file; the command receives ``hsm``."""

    @click.option(
        "--hsm-module",
        envvar="IFADIT_HSM_MODULE",
        type=click.Path(dir_okay=False, exists=True),
        default=None,
        show_default="IFADIT_HSM_MODULE, else no HSM",
        help="PKCS#11 library of the HSM that wraps the KEK (e.g. /usr/lib/softhsm/libsofthsm2.so).",
    )
    @click.option(
        "--hsm-token",
        envvar="IFADIT_HSM_TOKEN",
        default=None,
        show_default="IFADIT_HSM_TOKEN",
        help="Label of the HSM token holding the wrapping key.",
    )
    @click.option(
        "--hsm-key-label",
        default=DEFAULT_HSM_KEY_LABEL,
        show_default=True,
        help="Label of the AES wrapping key inside the token (created by `vault init --service`).",
    )
    @click.option(
        "--hsm-pin-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        show_default=f"{HSM_PIN_ENV}",
        help="File whose first line is the HSM user PIN.",
    )
    @functools.wraps(command)
    def wrapper(
        *args: Any,
        hsm_module: str | None,
        hsm_token: str | None,
        hsm_key_label: str,
        hsm_pin_file: Path | None,
        **kwargs: Any,
    ) -> Any:
        return command(*args, hsm=hsm_config(hsm_module, hsm_token, hsm_key_label, hsm_pin_file), **kwargs)

    return wrapper


def hsm_config(
    module: str | None, token: str | None, key_label: str, pin_file: Path | None
) -> HsmConfig | None:
    """The HSM configuration, or None without --hsm-module; usage errors for a half configuration."""
    if module is None:
        return None
    from keyvault.service.hsm import HsmConfig

    if not token:
        raise click.UsageError("--hsm-module needs --hsm-token (or IFADIT_HSM_TOKEN)")
    if pin_file is not None:
        try:
            pin = pin_file.read_text().splitlines()[0] if pin_file.stat().st_size else ""
        except OSError as exc:
            raise click.UsageError(f"cannot read the HSM PIN file {pin_file}: {exc.strerror}") from None
    else:
        pin = os.environ.get(HSM_PIN_ENV, "")
    if not pin:
        raise click.UsageError(f"no HSM PIN: pass --hsm-pin-file or set {HSM_PIN_ENV}")
    return HsmConfig(module=module, token_label=token, pin=pin, key_label=key_label)


def print_service_init(
    url: str | None,
    admin: str,
    passphrase: bytes,
    kdf: Any,
    shares: int,
    threshold: int,
    hsm: HsmConfig | None,
    as_json: bool,
) -> None:
    """Create a service-mode vault and print its facts, and its shares once (stdout; nothing else keeps them)."""
    import json

    from keyvault.service.setup import init_service_vault

    result = init_service_vault(url, admin, passphrase, shares=shares, threshold=threshold, hsm=hsm, kdf=kdf)
    if as_json:
        body = {
            "vault_id": result.vault_id,
            "url": result.url,
            "admin": result.admin,
            "mode": result.mode,
            "threshold": result.threshold,
            "audit_key_fingerprint": result.audit_key_fingerprint,
            "shares": list(result.shares),
        }
        click.echo(json.dumps(body, indent=2))
        return
    click.echo(
        f"vault {result.vault_id} created at {result.url} in service mode (admin {result.admin}); "
        f"audit key fingerprint {result.audit_key_fingerprint}"
    )
    if result.mode == "hsm":
        click.echo(
            f"the KEK is wrapped by HSM key {hsm.key_label if hsm else ''!r}: `ifadit vault serve` unseals itself"
        )
        return
    click.echo(
        f"\nUNSEAL SHARES: any {result.threshold} of these {len(result.shares)} rebuild the vault's KEK.\n"
        "They are shown this once and stored nowhere. Hand each to a different custodian now;\n"
        "losing more than "
        f"{len(result.shares) - result.threshold} of them loses the vault.\n"
    )
    for number, share in enumerate(result.shares, start=1):
        click.echo(f"share {number}: {share}")
