"""Encryption at rest of the OAuth tokens kept in the warehouse (Fernet, as Airflow encrypts its connections).

Keys are Fernet keys (url-safe base64 of 32 bytes), several of them comma-separated as in Airflow's
`[core] fernet_key`: the first encrypts, every one decrypts, so a new key is put first and the old one kept
until each company has refreshed its tokens once (within the hour the access token lives). Which keys a
deployment has is the glue's business (the QuickBooks hook); this module only takes them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from taxdome_qbo.services.local_files import PRIVATE_FILE_MODE

log = logging.getLogger(__name__)


class TokenKeyError(ValueError):
    """A configured key is not a Fernet key (the message names where it came from, never the key)."""


class TokenDecryptionError(RuntimeError):
    """The stored tokens were encrypted with a key the deployment no longer has."""


def split_keys(keys: str | None) -> list[str]:
    """The keys of a comma-separated setting (Airflow's `fernet_key` format); blank entries dropped."""
    return [key.strip() for key in (keys or "").split(",") if key.strip()]


class TokenCipher:
    """Encrypts tokens with the first of `keys` and decrypts with any of them.

    :param keys: Fernet keys, the encrypting one first, each with where it came from (for error messages).
    """

    def __init__(self, keys: Iterable[tuple[str, str]]) -> None:
        fernets = []
        for key, origin in keys:
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise TokenKeyError(
                    f"{origin} is not a Fernet key (32 url-safe base64-encoded bytes; generate one with "
                    "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
                ) from None
        if not fernets:
            raise TokenKeyError("no key to encrypt the QuickBooks tokens with")
        self._fernet = MultiFernet(fernets)

    def __repr__(self) -> str:
        return "TokenCipher(<keys hidden>)"

    @classmethod
    def generated(cls) -> TokenCipher:
        """A cipher on a new random key (what nobody else can read)."""
        return cls([(Fernet.generate_key().decode(), "a generated key")])

    def encrypt(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode()

    def decrypt(self, stored: str, *, realm_id: str) -> str:
        try:
            return self._fernet.decrypt(stored.encode()).decode()
        except InvalidToken:
            raise TokenDecryptionError(
                f"the stored tokens of QuickBooks company {realm_id} cannot be decrypted with the configured "
                "key(s): restore the key that encrypted them (Airflow's [core] fernet_key, the QuickBooks "
                "connection's extra token_encryption_key, or the key file), or reconnect the company"
            ) from None


def key_from_file(path: Path, *, create: bool) -> str | None:
    """The Fernet key kept in `path`; with `create`, a new one is written there (0600) if there is none.

    Creation is atomic, so two processes starting at once agree on one key: the key is written to a private
    file of this process first and linked into place only if `path` does not exist yet.
    """
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(descriptor, "w") as file:
            file.write(Fernet.generate_key().decode() + "\n")
        try:
            os.link(draft, path)
            log.warning(
                "No key is configured to encrypt the QuickBooks tokens (Airflow's [core] fernet_key or the "
                "QuickBooks connection's extra token_encryption_key): generated one in %s (readable by this "
                "user only). Keep it with the warehouse: without it the stored tokens cannot be read",
                path,
            )
        except FileExistsError:
            pass  # another process created it first: its key is the one
        finally:
            draft.unlink()
    return path.read_text().strip()
