"""Auto-unseal: the service KEK encrypted by an AES-256 key that never leaves an HSM (PKCS#11, ``python-pkcs11``).

``create_wrapping_key`` makes the HSM key (token object, sensitive, not extractable); ``wrap_kek``
encrypts the KEK with it (CKM_AES_CBC_PAD, random IV: the one AES mode SoftHSM2 offers for data) and
``unwrap_kek`` decrypts. The mode is unauthenticated, so the caller checks the result by opening the
audit signing key sealed under the KEK (AES-GCM): a changed blob or another HSM key is refused there.
The PIN comes from the service's environment or a file; it never appears in a message or a repr.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from keyvault.service.errors import HsmError

DEFAULT_KEY_LABEL = "ifadit-kek-wrap"
IV_BYTES = 16


@dataclass(frozen=True)
class HsmConfig:
    """Which PKCS#11 module, token and key; the PIN is excluded from the repr."""

    module: str  # path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so
    token_label: str
    pin: str = field(repr=False)
    key_label: str = DEFAULT_KEY_LABEL


@contextmanager
def _session(config: HsmConfig, *, rw: bool = False) -> Iterator[Any]:
    try:
        import pkcs11
    except ImportError:
        raise HsmError("python-pkcs11 is not installed", hint="pip install python-pkcs11") from None
    try:
        lib = pkcs11.lib(config.module)
        try:
            token = lib.get_token(token_label=config.token_label)
        except pkcs11.exceptions.NoSuchToken:  # a token made after the library loaded: look again
            lib.reinitialize()
            token = lib.get_token(token_label=config.token_label)
        session = token.open(user_pin=config.pin, rw=rw)
    except Exception as exc:  # the library raises many types; none may carry the PIN
        raise HsmError(
            f"cannot open HSM token {config.token_label!r} through {config.module} ({type(exc).__name__})",
            hint="check the module path, token label and PIN",
        ) from None
    try:
        yield session
    finally:
        session.close()


def _key(session: Any, config: HsmConfig) -> Any:
    from pkcs11 import KeyType, ObjectClass

    try:
        return session.get_key(
            label=config.key_label, key_type=KeyType.AES, object_class=ObjectClass.SECRET_KEY
        )
    except Exception as exc:
        raise HsmError(
            f"no single AES key labelled {config.key_label!r} in HSM token {config.token_label!r} ({type(exc).__name__})"
        ) from None


def create_wrapping_key(config: HsmConfig) -> None:
    """Generate the AES-256 wrapping key in the token; refuses a label that is already taken."""
    from pkcs11 import Attribute, KeyType, ObjectClass
    from pkcs11.exceptions import NoSuchKey

    with _session(config, rw=True) as session:
        try:
            session.get_key(label=config.key_label, key_type=KeyType.AES, object_class=ObjectClass.SECRET_KEY)
        except NoSuchKey:
            pass
        except Exception as exc:
            raise HsmError(f"HSM key lookup failed ({type(exc).__name__})") from None
        else:
            raise HsmError(
                f"HSM token {config.token_label!r} already holds a key labelled {config.key_label!r}",
                hint="pick another --hsm-key-label",
            )
        try:
            session.generate_key(
                KeyType.AES,
                256,
                label=config.key_label,
                store=True,
                template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
            )
        except Exception as exc:
            raise HsmError(f"the HSM refused to generate the wrapping key ({type(exc).__name__})") from None


def wrap_kek(config: HsmConfig, kek: bytes) -> bytes:
    """IV ‖ AES-CBC-PAD(HSM key, KEK)."""
    from pkcs11 import Mechanism

    iv = os.urandom(IV_BYTES)
    with _session(config) as session:
        try:
            return iv + bytes(
                _key(session, config).encrypt(kek, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv)
            )
        except HsmError:
            raise
        except Exception as exc:
            raise HsmError(f"the HSM refused to wrap the KEK ({type(exc).__name__})") from None


def unwrap_kek(config: HsmConfig, blob: bytes) -> bytes:
    """Inverse of ``wrap_kek`` (the caller authenticates the result)."""
    from pkcs11 import Mechanism

    with _session(config) as session:
        key = _key(session, config)
        try:
            return bytes(
                key.decrypt(blob[IV_BYTES:], mechanism=Mechanism.AES_CBC_PAD, mechanism_param=blob[:IV_BYTES])
            )
        except Exception:
            raise HsmError(
                "the HSM could not unwrap the KEK: wrong HSM key, or the stored blob was changed"
            ) from None
