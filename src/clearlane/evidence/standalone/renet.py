"""Re-check a clearlane dispute bundle with nothing but Python 3.11+ (and, for the signatures,
the ``cryptography`` package). This file is copied into every bundle as ``renet.py``.

Run it in the unpacked bundle directory (``python renet.py``). It

0. derives every canonical leaf of the batch again from the raw inputs in ``batch/inputs.jsonl``
   (quantity x price rounded half to even, fees at the participant's tier less the pool's
   discount, see docs/ARCHITECTURE.md) and the configuration, and compares them with
   ``batch/leaves.txt`` (``clearlane dispute-check`` also checks that these inputs are the rows
   of the hashed log payloads in ``log/``);
1. rebuilds the batch's RFC 9162 Merkle root from ``batch/leaves.txt`` (one canonical leaf per
   line, in leaf order) and compares it with the root in ``batch/header.txt``;
2. nets the obligations in the leaves again — per participant and asset, received minus paid,
   in the configuration's participant and asset order — and compares the result, byte for
   byte, with ``batch/net_instructions.csv``, whose SHA-256 is the net digest in the header,
   and the per-asset gross and net-debit totals with the header's;
3. walks the log segment in ``log/`` (input entry and transition entry of each step, see
   docs/AUDIT.md) from its first entry to the step that cleared the batch, recomputing every
   hash, and checks that this step's transition committed the same header, and that the last
   hash is the log head signed by ``checkpoint_at_close.json``;
4. if ``verify.py`` and ``cryptography`` are available, verifies ``proof.json`` and the
   consistency file ``checkpoint_at_close.json`` (close checkpoint -> the proof's checkpoint)
   against the public keys in ``keys.json``.

Exit status 0 when everything holds, 1 otherwise (the first failure is printed).
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import tomllib
from pathlib import Path
from typing import Any


class BundleError(Exception):
    pass


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, bottom-up (an unpaired last node moves up unchanged)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [_leaf(x) for x in leaves]
    while len(level) > 1:
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _decimal(text: str, scale: int) -> int:
    whole, _, fraction = str(text).partition(".")
    if not whole.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > scale:
        raise BundleError(f"{text!r} is not a decimal with at most {scale} places")
    return int(whole + fraction.ljust(scale, "0"))


def _half_even(numerator: int, denominator: int) -> int:
    q, r = divmod(numerator, denominator)
    return q + (2 * r > denominator or (2 * r == denominator and q % 2 == 1))


def derive_leaves(
    rows: list[dict[str, Any]],
    config: dict[str, Any],
    changes: list[dict[str, Any]],
    batch_id: str,
    pool: str,
) -> list[str]:
    """The canonical leaves of a batch from its raw inputs, in the given (leaf) order."""
    house = str(config.get("clearing", {}).get("house", "HOUSE"))
    tiers = {
        name: _decimal(t["bps"], 2)
        for name, t in (config.get("fee_tiers") or {"standard": {"bps": "0"}}).items()
    }
    pools = {p["id"]: p for p in config["pools"]}
    discount = _decimal(pools[pool].get("fee_discount_pct", "0"), 2)
    out = []
    for i, row in enumerate(rows):
        participants = {p["id"]: dict(p) for p in config["participants"]}
        assets = {a["code"]: dict(a) for a in config["assets"]}
        for change in changes:
            if int(change["seq"]) < int(row["seq"]):
                for pid, patch in change["changes"].get("participants", {}).items():
                    participants[pid].update(patch)
                for code, patch in change["changes"].get("assets", {}).items():
                    assets[code].update(patch)

        def fee(amount: int, who: str, participants: dict[str, Any] = participants) -> int:
            """amount x the participant's tier rate (hundredths of a bp) x (1 - pool discount), half-even."""
            rate = 0 if who == house else tiers[participants[who].get("fee_tier", "standard")]
            return _half_even(amount * rate * (10_000 - discount), 10**10)

        if row["kind"] == "trade":
            base, quote = str(row["symbol"]).split("/")
            bs, qs = int(assets[base]["scale"]), int(assets[quote]["scale"])
            buyer, seller = str(row["buyer"]), str(row["seller"])
            qty = int(row["qty_mantissa"]) * 10 ** (bs - int(row["qty_exp"]))
            exp = qs - bs - int(row["price_exp"])
            product = qty * int(row["price_mantissa"])
            quote_amt = product * 10**exp if exp >= 0 else _half_even(product, 10**-exp)
            legs = [
                (seller, buyer, base, qty),
                (buyer, seller, quote, quote_amt),
                (buyer, house, quote, fee(quote_amt, buyer)),
                (seller, house, quote, fee(quote_amt, seller)),
            ]
            flow_id, kind = str(row["trade_id"]), "trade"
        else:
            asset, payer, payee = str(row["asset"]), str(row["payer"]), str(row["payee"])
            amount = _decimal(str(row["amount"]), int(assets[asset]["scale"]))
            legs = [(payer, payee, asset, amount), (payer, house, asset, fee(amount, payer))]
            flow_id, kind = str(row["payment_id"]), "payment"
        text = ";".join(f"{a}>{b}:{c}:{v}" for a, b, c, v in legs if v != 0)
        exch = row.get("exch_batch_id") or ""
        out.append(f"clearlane.leaf.v1|{batch_id}|{i}|{kind}|{flow_id}|{exch}|{text}")
    return out


def renet(
    leaves: list[str], participants: list[str], assets: list[str]
) -> tuple[bytes, dict[str, list[int]]]:
    """Net instruction lines and per-asset [gross, net debit] from canonical leaves."""
    p_index = {p: i for i, p in enumerate(participants)}
    a_index = {a: i for i, a in enumerate(assets)}
    net: dict[tuple[int, int], int] = {}
    gross = [0] * len(assets)
    for text in leaves:
        for leg in text.split("|")[6].split(";"):
            payer, _, rest = leg.partition(">")
            payee, asset, amount_text = rest.rsplit(":", 2)
            amount, a = int(amount_text), a_index[asset]
            gross[a] += amount
            net[(p_index[payer], a)] = net.get((p_index[payer], a), 0) - amount
            net[(p_index[payee], a)] = net.get((p_index[payee], a), 0) + amount
    lines = "".join(f"{participants[p]},{assets[a]},{v}\n" for (p, a), v in sorted(net.items()) if v != 0)
    debit = [0] * len(assets)
    for (_, a), v in net.items():
        debit[a] += max(0, -v)
    return lines.encode(), {assets[a]: [gross[a], debit[a]] for a in range(len(assets)) if gross[a]}


def chain(entries: list[dict[str, Any]], root: Path) -> tuple[bytes, dict[str, Any]]:
    """Recompute the log segment's hashes; returns the last transition hash and last body."""
    head = bytes.fromhex(str(entries[0]["prev_hash"]))
    body: dict[str, Any] = {}
    for e in entries:
        seq = int(str(e["seq"]))
        payload = (root / str(e["payload_file"])).read_bytes()
        body_bytes = (root / str(e["transition_file"])).read_bytes()
        if bytes.fromhex(str(e["prev_hash"])) != head:
            raise BundleError(f"log entry {seq}: prev_hash does not continue the chain")
        h = hashlib.sha256(b"clearlane.log.v2" + head + struct.pack(">qq", seq, int(str(e["at_ms"]))))
        h.update(str(e["kind"]).encode() + b"\x00" + hashlib.sha256(payload).digest())
        in_hash = h.digest()
        if in_hash.hex() != e["hash"]:
            raise BundleError(f"log entry {seq}: hash does not match its payload")
        t = hashlib.sha256(
            b"clearlane.transition.v1"
            + in_hash
            + struct.pack(">q", seq)
            + hashlib.sha256(body_bytes).digest()
        ).digest()
        if t.hex() != e["transition_hash"]:
            raise BundleError(f"transition {seq}: hash does not match its body")
        head = t
        body = json.loads(body_bytes)
    return head, body


def check(root: Path) -> list[str]:
    """Run every check in the unpacked bundle ``root``; returns what was verified."""
    header = (root / "batch" / "header.txt").read_text().rstrip("\n")
    h = header.split("|")
    batch_id, flows, root_hex, totals_text, net_hex = h[1], int(h[6]), h[8], h[9], h[10]
    leaves = (root / "batch" / "leaves.txt").read_text().splitlines()
    config = tomllib.loads((root / "config.toml").read_text())
    return [
        _check_derived(root, leaves, config, batch_id, h[2]),
        _check_root(leaves, batch_id, flows, root_hex),
        _check_net(root, leaves, config, net_hex, totals_text),
        _check_log(root, batch_id, (root_hex, net_hex, totals_text)),
        _check_signatures(root, root_hex),
    ]


def _check_derived(root: Path, leaves: list[str], config: dict[str, Any], batch_id: str, pool: str) -> str:
    """The stored leaves are what the raw inputs give under the configuration of the day."""
    rows = [json.loads(line) for line in (root / "batch" / "inputs.jsonl").read_text().splitlines()]
    changes = json.loads((root / "log" / "config_changes.json").read_text())
    derived = derive_leaves(rows, config, changes, batch_id, pool)
    for i, (got, want) in enumerate(zip(derived, leaves, strict=False)):
        if got != want:
            raise BundleError(
                f"leaf {i} derived from the raw input differs:\n  derived {got}\n  stored  {want}"
            )
    if len(derived) != len(leaves):
        raise BundleError(f"{len(derived)} raw inputs for {len(leaves)} leaves")
    return f"{len(leaves)} leaves derived again from the raw inputs"


def _check_root(leaves: list[str], batch_id: str, flows: int, root_hex: str) -> str:
    if len(leaves) != flows:
        raise BundleError(f"{len(leaves)} leaves, the header says {flows}")
    for i, text in enumerate(leaves):
        f = text.split("|")
        if len(f) != 7 or f[0] != "clearlane.leaf.v1" or f[1] != batch_id or f[2] != str(i):
            raise BundleError(f"leaf {i} is not leaf {i} of batch {batch_id}")
    if merkle_root([x.encode() for x in leaves]).hex() != root_hex:
        raise BundleError("the leaves do not give the batch root")
    return f"Merkle root of {flows} leaves = {root_hex}"


def _check_net(root: Path, leaves: list[str], config: dict[str, Any], net_hex: str, totals_text: str) -> str:
    participants = [p["id"] for p in config["participants"]] + [
        config.get("clearing", {}).get("house", "HOUSE")
    ]
    assets = [a["code"] for a in config["assets"]]
    lines, totals = renet(leaves, participants, assets)
    stored = (root / "batch" / "net_instructions.csv").read_bytes()
    if lines != stored:
        raise BundleError("netting the leaves again gives other net instructions than net_instructions.csv")
    if hashlib.sha256(stored).hexdigest() != net_hex:
        raise BundleError("net_instructions.csv is not the net digest in the header")
    want_totals = ";".join(f"{a}:{g}:{d}" for a, (g, d) in totals.items())
    if want_totals != totals_text:
        raise BundleError(f"net totals {want_totals} differ from the header's {totals_text}")
    return f"re-netted: {len(lines.splitlines())} net instructions, totals {totals_text}"


def _check_log(root: Path, batch_id: str, committed: tuple[str, str, str]) -> str:
    """The log segment chains, clears this batch with this header and ends at the signed head."""
    entries = json.loads((root / "log" / "entries.json").read_text())
    head, body = chain(entries, root)
    cleared = [c for c in body.get("cleared", []) if isinstance(c, dict) and c.get("batch_id") == batch_id]
    close_seq = int(entries[-1]["seq"])
    if not cleared:
        cleared = [
            c
            for e in entries
            for c in json.loads((root / e["transition_file"]).read_bytes()).get("cleared", [])
            if c.get("batch_id") == batch_id
        ]
    if not cleared or (cleared[0]["root"], cleared[0]["net"], cleared[0]["totals"]) != committed:
        raise BundleError("the log segment's transitions do not clear this batch with this header")
    at_close = json.loads((root / "checkpoint_at_close.json").read_text())
    signed = dict(line.split(" ", 1) for line in at_close["old"]["body"].splitlines()[1:])
    if signed["log_head"] != head.hex() or int(signed["log_seq"]) != close_seq:
        raise BundleError("the log segment does not end at the log head of the checkpoint at close")
    return f"log segment {entries[0]['seq']}..{close_seq}: {len(entries)} steps chain to the signed log head"


def _check_signatures(root: Path, root_hex: str) -> str:
    """Signatures through the bundle's own copy of verify.py, when it can be imported."""
    sys.path.insert(0, str(root))
    try:
        import verify  # the bundle's copy of clearlane/audit/verify.py
    except ImportError:
        return "verify.py not importable: signatures not checked"
    pins = verify.load_pubkeys((root / "keys.json").read_bytes())
    try:
        verify.verify_consistency_document((root / "checkpoint_at_close.json").read_bytes(), pins)
        result = verify.verify_proof_document((root / "proof.json").read_bytes(), pins)
    except verify.ProofError as exc:
        raise BundleError(f"signed evidence refused: {exc}") from None
    if result["summary"]["batch"]["root"] != root_hex:
        raise BundleError("proof.json is about another batch root")
    return "checkpoint at close and proof.json: signatures, inclusion and consistency verified"


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    try:
        for line in check(root):
            print("ok:", line)
    except (BundleError, OSError, KeyError, ValueError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print("the bundle reproduces the batch's commitment and netting result")
    return 0


if __name__ == "__main__":
    sys.exit(main())
