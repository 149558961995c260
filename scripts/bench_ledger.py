"""Ledger throughput: small entries (a day's worth) and wide entries (batch holds).

Run: .venv/bin/python scripts/bench_ledger.py [--entries N] [--wide-legs N]
Prints entries/s and legs/s per scenario; not a test, numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from clearlane.core.ledger import AccountKey, JournalEntry, Ledger, Purpose


def _accounts(ledger: Ledger, n_participants: int, assets: list[str]) -> dict[str, np.ndarray]:
    by_asset: dict[str, np.ndarray] = {}
    for asset in assets:
        ids = [
            ledger.account(AccountKey(f"P{i:05d}", asset, Purpose.AVAILABLE)) for i in range(n_participants)
        ]
        by_asset[asset] = np.array(ids, dtype=np.int64)
    return by_asset


def _report(label: str, n_entries: int, n_legs: int, seconds: float) -> None:
    print(
        f"{label:<40} {n_entries:>8} entries {n_legs:>10} legs  {seconds * 1e3:9.1f} ms  "
        f"{n_entries / seconds:>10.0f} entries/s  {n_legs / seconds:>12.0f} legs/s  "
        f"{seconds / n_entries * 1e6:8.1f} us/entry"
    )


def bench_small(n_entries: int) -> None:
    ledger = Ledger()
    accounts = _accounts(ledger, 2000, ["USD"])["USD"]
    rng = np.random.default_rng(1)
    pairs = rng.choice(accounts, size=(n_entries, 2))
    pairs[:, 1] = np.where(pairs[:, 0] == pairs[:, 1], (pairs[:, 1] + 1) % len(accounts), pairs[:, 1])
    amounts = rng.integers(1, 10_000, size=n_entries)
    entries = [
        JournalEntry(f"t{i}", "fee", i, pairs[i], np.array([-amounts[i], amounts[i]], dtype=np.int64))
        for i in range(n_entries)
    ]
    start = time.perf_counter()
    for entry in entries:
        ledger.post(entry)
    _report("post 2-leg entries", n_entries, 2 * n_entries, time.perf_counter() - start)

    holds = [
        JournalEntry(
            f"h{i}",
            "batch_hold",
            n_entries + i,
            pairs[i],
            np.array([-amounts[i], amounts[i]], dtype=np.int64),
            pending=True,
            timeout_at_ms=n_entries + i + 1_000,
        )
        for i in range(n_entries)
    ]
    start = time.perf_counter()
    for entry in holds:
        ledger.post(entry)
    for i in range(0, n_entries, 2):
        ledger.post_pending(f"h{i}", n_entries + i + 1)
    expired = ledger.expire(10 * n_entries)
    _report("2-leg hold + post/expire", n_entries, 2 * n_entries, time.perf_counter() - start)
    if len(expired) != n_entries // 2:
        raise RuntimeError(f"expected {n_entries // 2} expiries, got {len(expired)}")

    start = time.perf_counter()
    digest = ledger.state_digest()
    print(f"state_digest over {ledger.n_entries} entries: {(time.perf_counter() - start) * 1e3:.1f} ms")
    start = time.perf_counter()
    ledger.check_invariants()
    print(f"check_invariants: {(time.perf_counter() - start) * 1e3:.1f} ms")
    start = time.perf_counter()
    ledger.audit_balances()
    print(f"audit_balances: {(time.perf_counter() - start) * 1e3:.1f} ms")
    start = time.perf_counter()
    ledger.close_day("2024-01-01", 10 * n_entries)
    print(f"close_day: {(time.perf_counter() - start) * 1e3:.1f} ms  (digest {digest.hex()[:16]})")


def bench_wide(n_entries: int, n_legs: int) -> None:
    ledger = Ledger()
    accounts = _accounts(ledger, n_legs, ["USD", "EUR"])
    house = ledger.account(AccountKey("HOUSE", "USD", Purpose.SETTLEMENT, "L2:fast"))
    house_eur = ledger.account(AccountKey("HOUSE", "EUR", Purpose.SETTLEMENT, "L2:fast"))
    for index in accounts["USD"].tolist():
        ledger.set_floor(index, -(10**12))
    rng = np.random.default_rng(2)
    entries = []
    for i in range(n_entries):
        amounts = rng.integers(1, 1_000_000, size=n_legs - 1) * rng.choice([-1, 1], size=n_legs - 1)
        legs = np.concatenate([accounts["USD"][: n_legs - 1], [house]])
        entries.append(
            JournalEntry(
                f"b{i}",
                "batch_hold",
                i,
                legs,
                np.concatenate([amounts, [-amounts.sum()]]),
                pending=True,
                timeout_at_ms=i + 60_000,
            )
        )
    start = time.perf_counter()
    for entry in entries:
        ledger.post(entry)
    _report(f"post pending {n_legs}-leg 1-asset", n_entries, n_entries * n_legs, time.perf_counter() - start)
    start = time.perf_counter()
    for entry in entries:
        ledger.post_pending(entry.entry_id, n_entries)
    _report(f"post_pending {n_legs}-leg", n_entries, n_entries * n_legs, time.perf_counter() - start)

    half = n_legs // 2
    mixed = []
    for i in range(n_entries):
        usd = rng.integers(1, 1_000_000, size=half - 1)
        eur = rng.integers(1, 1_000_000, size=n_legs - half - 1)
        legs = np.concatenate(
            [accounts["USD"][: half - 1], [house], accounts["EUR"][: n_legs - half - 1], [house_eur]]
        )
        amounts = np.concatenate([usd, [-usd.sum()], eur, [-eur.sum()]])
        mixed.append(JournalEntry(f"m{i}", "l1_settle", i, legs, amounts))
    start = time.perf_counter()
    for entry in mixed:
        ledger.post(entry)
    _report(f"post {n_legs}-leg 2-asset", n_entries, n_entries * n_legs, time.perf_counter() - start)
    start = time.perf_counter()
    for entry in mixed:
        ledger.post(entry)
    _report(f"re-post {n_legs}-leg (DUPLICATE)", n_entries, n_entries * n_legs, time.perf_counter() - start)
    ledger.check_invariants()
    ledger.audit_balances()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--wide-entries", type=int, default=200)
    parser.add_argument("--wide-legs", type=int, default=5_000)
    args = parser.parse_args()
    bench_small(args.entries)
    bench_wide(args.wide_entries, args.wide_legs)


if __name__ == "__main__":
    main()
