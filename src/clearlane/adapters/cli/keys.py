"""The ``keys`` command group: the checkpoint signing keys (Ed25519) — ``init`` a key directory,
``rotate`` a store's key (a log entry signed by the old and the new key), ``export`` the public
keys a verifier pins; ``chain`` shows, rotates or imports the base-layer account key
(``--chain ethereum``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clearlane.adapters.cli.common import (
    ExistingDbOption,
    KeysOption,
    console,
    fail,
    missing_db,
    open_node,
    open_store,
)

keys_app = typer.Typer(
    no_args_is_help=True, help="Checkpoint signing keys (Ed25519) and the base-layer account key."
)


@keys_app.command("init")
def keys_init(
    keys: Annotated[Path, typer.Option("--keys", help="Key directory (created 0700).")] = Path(
        "clearlane.keys"
    ),
) -> None:
    """Create the directory's active signing key if it has none; print its id and public key."""
    from clearlane.node.signing import KeyStore

    store = KeyStore(keys)
    existed = store.active_id() is not None
    signer = store.ensure_active()
    console.print(f"{'active key' if existed else 'created key'} {signer.key_id}")
    console.print(
        f"public key {signer.public_key.hex()}  (private key: {keys / (signer.key_id + '.key')}, mode 0600)"
    )


@keys_app.command("rotate")
def keys_rotate(db: ExistingDbOption = "clearlane.db", keys: KeysOption = None) -> None:
    """Replace the store's signing key: a log entry signed by the old and the new key."""
    from clearlane.node.node import default_key_dir
    from clearlane.node.signing import KeyStore

    if missing_db(db):
        raise fail(f"{db}: no such database")
    directory = keys if keys is not None else default_key_dir(db)
    node = open_node(db, None, create=False, keys=directory)
    old = node.auditor.current_key_id
    try:
        record = node.rotate_key(KeyStore(directory))
    finally:
        node.close()
    console.print(f"rotated {old} -> {record.key_id} at log seq {record.log_seq}")
    console.print(
        f"the retired key's private file was deleted; its public key still verifies checkpoints "
        f"up to log seq {record.log_seq - 1}"
    )


@keys_app.command("export")
def keys_export(
    db: ExistingDbOption = "clearlane.db",
    out: Annotated[Path | None, typer.Option(help="Write the pin file here (default: print it).")] = None,
) -> None:
    """The store's public keys with the log range each signed for (a --pubkeys file)."""
    from clearlane.adapters.sql import audit_tables
    from clearlane.core.proofs.canonical import canonical_document
    from clearlane.node.signing import public_key_doc

    store = open_store(db)
    records = [
        {"key_id": k.key_id, "public_key": k.public_key, "log_seq": k.log_seq}
        for k in audit_tables.read_keys(store.engine)
    ]
    doc = public_key_doc(store.get_meta("store_id") or "", records)
    store.close()
    text_out = canonical_document(doc).decode()
    if out is None:
        console.out(text_out, end="")
    else:
        out.write_text(text_out)
        console.print(f"wrote {len(records)} public keys to {out}")


@keys_app.command("chain")
def keys_chain(
    keys: Annotated[Path, typer.Option("--keys", help="Key directory (created 0700).")] = Path(
        "clearlane.keys"
    ),
    rotate: Annotated[bool, typer.Option(help="Make a new account key active (fund it first).")] = False,
    import_file: Annotated[
        Path | None,
        typer.Option("--import", help="Make this funded account's hex key file (mode 0600) active."),
    ] = None,
) -> None:
    """The base-layer account that anchors (``--chain ethereum``): print its address, created on
    first use; ``--rotate`` or ``--import`` changes it (the old key stays for its in-flight txs)."""
    from clearlane.adapters.chain.ethkeys import EthKeyStore, load_key_file
    from clearlane.node.signing import KeyStoreError

    store = EthKeyStore(keys)
    try:
        if import_file is not None:
            load_key_file(import_file)  # refuses a key file others may read
            key = store.add(import_file.read_text())
            store.set_active(key.address)
        elif rotate:
            key = store.rotate()
        else:
            key = store.ensure_active()
    except KeyStoreError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"base-layer account {key.address}  (key: {store.directory / (key.address + '.key')}, mode 0600)"
    )
