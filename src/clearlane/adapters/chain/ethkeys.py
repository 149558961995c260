"""The base-layer signing key: an Ethereum account key kept beside the checkpoint keys.

Layout, inside the store's key directory (:mod:`clearlane.node.signing`; created ``0700``)::

    ethereum/<address>.key   the secp256k1 private key as hex, created 0600 (os.open with the
                             mode), refused if group or others may read it
    ethereum/ACTIVE          the address new transactions are signed with

The key never goes into the database, a log entry, an exception message or the adapter's
journal. Rotation makes a new key active; the old file stays until the operator removes it,
because transactions already sent under its nonces may still need a fee replacement (the
journal names each transaction's sender).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any, NoReturn

from clearlane.node.signing import KeyStoreError

__all__ = ["EthKey", "EthKeyStore"]

_ACTIVE = "ACTIVE"


class EthKey:
    """One account key: signs transactions, knows its address, never shows the key."""

    __slots__ = ("_account", "address")

    def __init__(self, account: Any) -> None:
        self._account = account
        self.address: str = account.address

    def sign(self, tx: dict[str, Any]) -> tuple[bytes, bytes]:
        """(raw signed transaction, its hash)."""
        signed = self._account.sign_transaction(tx)
        return bytes(signed.raw_transaction), bytes(signed.hash)

    def __repr__(self) -> str:
        return f"EthKey(address={self.address})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("an EthKey holds a private key and cannot be pickled")


def load_eth_libraries() -> Any:
    """Import eth-account and web3 keeping the interpreter's recursion limit, and return
    ``eth_account.Account``. Their dependency py_ecc raises the limit to 100,000 at import; in
    the service that would let a hostile, deeply nested request body overflow the C stack
    instead of raising RecursionError (which the intake turns into a clean refusal)."""
    limit = sys.getrecursionlimit()
    try:
        import web3  # noqa: F401  (imported here so its side effect is undone here)
        from eth_account import Account
    finally:
        sys.setrecursionlimit(limit)
    return Account


def _account(private_hex: str) -> Any:
    Account = load_eth_libraries()

    try:
        return Account.from_key(private_hex)
    except Exception:
        raise KeyStoreError("the Ethereum key file does not hold a valid private key") from None


class EthKeyStore:
    """The ``ethereum/`` directory of a key directory."""

    def __init__(self, key_dir: str | Path) -> None:
        self.directory = Path(key_dir) / "ethereum"

    def create(self) -> EthKey:
        return self.add(load_eth_libraries().create().key.hex())

    def add(self, private_hex: str) -> EthKey:
        """Store an existing key (an account the operator funded) and return it."""
        key = EthKey(_account(private_hex.strip()))
        self._ensure_dir()
        path = self.directory / f"{key.address}.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(private_hex.strip().removeprefix("0x") + "\n")
        return key

    def load(self, address: str) -> EthKey:
        return load_key_file(self.directory / f"{address}.key")

    def active(self) -> str | None:
        path = self.directory / _ACTIVE
        return path.read_text().strip() if path.exists() else None

    def set_active(self, address: str) -> None:
        self._ensure_dir()
        tmp = self.directory / f".{_ACTIVE}.tmp"
        tmp.write_text(address + "\n")
        os.replace(tmp, self.directory / _ACTIVE)

    def ensure_active(self) -> EthKey:
        """The active key, created (and made active) on first use."""
        address = self.active()
        if address is not None:
            return self.load(address)
        key = self.create()
        self.set_active(key.address)
        return key

    def rotate(self) -> EthKey:
        """A new active key; the old one stays for its in-flight transactions (module docstring)."""
        key = self.create()
        self.set_active(key.address)
        return key

    def _ensure_dir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def load_key_file(path: str | Path) -> EthKey:
    """A key from a hex file that only its owner may read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyStoreError(f"{path}: no such Ethereum key file") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyStoreError(f"{path}: group or others may access this key file (chmod 600 it)")
    return EthKey(_account(path.read_text().strip()))
