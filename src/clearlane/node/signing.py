"""Checkpoint signing keys: a key directory on disk and the signer that uses one key.

Layout of a key directory (created ``0700``)::

    <key id>.key   PKCS#8 PEM Ed25519 private key, created 0600 (os.open with the mode, never
                   chmod afterwards), refused if group or others may read it
    <key id>.pub   the raw public key as hex, one line
    ACTIVE         the id of the key new stores are initialised with

A key id is the hex SHA-256 of the raw 32-byte public key. The private key is only ever held
by :class:`Signer`, whose ``repr`` names the key id and which refuses to be pickled; it never
goes into the database, a log entry, an exception message or a proof. A rotation retires the
old key: its private file is deleted once the rotation is committed, its public file stays,
and it still verifies the checkpoints it signed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Final, NoReturn

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clearlane.core.errors import InputError
from clearlane.core.proofs.verify import KEY_FIELDS, KEY_FORMAT, encode_note, key_id_of

__all__ = ["KeyStore", "KeyStoreError", "Signer", "key_statement"]

ACTIVE_FILE: Final = "ACTIVE"


class KeyStoreError(InputError, RuntimeError, code="KEY_DIRECTORY_UNUSABLE"):
    """A key directory or key file that cannot be used (never carries key material)."""


class Signer:
    """Signs with one Ed25519 private key. Knows its id and public key; never reveals the key."""

    __slots__ = ("_key", "key_id", "public_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Signer holds a private key and cannot be pickled")


def key_statement(
    action: str, store: str, key_id: str, public_key: bytes, prev_key_id: str | None, log_seq: int, at_ms: int
) -> str:
    """The text a key's introduction (``init``) or rotation (``rotate``) signs."""
    return encode_note(
        KEY_FORMAT,
        {
            "action": action,
            "store": store,
            "key_id": key_id,
            "public_key": public_key.hex(),
            "prev_key_id": prev_key_id or "-",
            "log_seq": log_seq,
            "at_ms": at_ms,
        },
        KEY_FIELDS,
    )


class KeyStore:
    """A directory of signing keys."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"KeyStore({str(self.directory)!r})"

    # -------------------------------------------------------------- create / load
    def create(self) -> Signer:
        """A fresh key, written to the directory (private half 0600)."""
        self._ensure_dir()
        private = Ed25519PrivateKey.generate()
        signer = Signer(private)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._write_atomic(self._private_path(signer.key_id), pem, 0o600)
        self._write_atomic(
            self.directory / f"{signer.key_id}.pub", (signer.public_key.hex() + "\n").encode(), 0o644
        )
        return signer

    def load(self, key_id: str) -> Signer:
        """The signer for ``key_id``; refuses a file others may read or that holds another key."""
        path = self._private_path(key_id)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise KeyStoreError(f"{path}: private key {key_id} not found in {self.directory}") from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyStoreError(
                f"{path}: permissions {stat.filemode(info.st_mode)} are too open (must be owner-only)"
            )
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError, OSError):
            # The parser's message could quote the file; say only what is wrong.
            raise KeyStoreError(f"{path}: not a readable unencrypted PKCS#8 PEM private key") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyStoreError(f"{path}: not an Ed25519 key")
        signer = Signer(private)
        if signer.key_id != key_id:
            raise KeyStoreError(f"{path}: holds key {signer.key_id}, not {key_id}")
        return signer

    def active_id(self) -> str | None:
        try:
            value = (self.directory / ACTIVE_FILE).read_text().strip()
        except FileNotFoundError:
            return None
        return value or None

    def set_active(self, key_id: str) -> None:
        self._ensure_dir()
        self._write_atomic(self.directory / ACTIVE_FILE, (key_id + "\n").encode(), 0o644)

    def ensure_active(self) -> Signer:
        """The active key, created (and made active) on first use."""
        key_id = self.active_id()
        if key_id is not None:
            return self.load(key_id)
        signer = self.create()
        self.set_active(signer.key_id)
        return signer

    def retire(self, key_id: str) -> None:
        """Delete a retired key's private half (its public half stays)."""
        self._private_path(key_id).unlink(missing_ok=True)

    def public_keys(self) -> dict[str, bytes]:
        out = {}
        for path in sorted(self.directory.glob("*.pub")):
            public = bytes.fromhex(path.read_text().strip())
            out[key_id_of(public)] = public
        return out

    # -------------------------------------------------------------- files
    def _private_path(self, key_id: str) -> Path:
        if len(key_id) != 64 or any(c not in "0123456789abcdef" for c in key_id):
            raise KeyStoreError(f"{key_id!r} is not a key id")
        return self.directory / f"{key_id}.key"

    def _ensure_dir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _write_atomic(self, path: Path, data: bytes, mode: int) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)


def public_key_doc(store: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``clearlane.keys.v1`` pin file for a store's key history (see ``clearlane keys export``)."""
    keys = []
    for i, rec in enumerate(records):
        until = records[i + 1]["log_seq"] if i + 1 < len(records) else None
        keys.append(
            {
                "key_id": rec["key_id"],
                "public_key": bytes(rec["public_key"]).hex(),
                "valid_from_seq": int(rec["log_seq"]),
                "valid_until_seq": until,
            }
        )
    return {"format": "clearlane.keys.v1", "store": store, "keys": keys}
