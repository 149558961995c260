"""Reconciliation benchmarks (figures go to docs/PERFORMANCE.md, "Reconciliation").

    .venv/bin/python scripts/bench_recon.py match [--n 1000000] [--m 1000000] [--noise 0.0]
            [--date-noise S] [--amount-noise S] [--typo-noise S] [--split-share 0.05]
            [--tolerance-bps B] [--fuzzy 80] [--profile]
        N external x M internal records with known truth: 80 % carry the internal reference,
        15 % carry none (amount + date window), --split-share (5 %) are a net settlement paid in
        two lines (split by account and day); the rest of M has no partner. Injected noise, each
        on its own share S of the lines: --date-noise moves a line +-1 day, --amount-noise moves
        its amount by up to +-0.5 % (uniform, in minor units), --typo-noise makes one typo in its
        reference (a character substituted, dropped, added, or two swapped); --noise S sets the
        date and typo shares at once (the earlier option). The rules: --tolerance-bps (default 50
        = 0.5 % when amounts are noisy, else 0) and --fuzzy (the fuzzy-reference cut-off in
        percent; 100 turns the pass off). Reports wall and CPU seconds, peak RSS, outcome
        counts, precision and recall against the truth; --profile prints the 20 costliest
        functions (cProfile: times inflated, shares are what count).
    .venv/bin/python scripts/bench_recon.py parse [--entries 1000000] [--per-statement 10000]
        writes a camt.053 of ENTRIES entries (statements of PER-STATEMENT entries) to a temp
        file and parses it with the streaming reader: wall, CPU, entries/s, peak RSS.

CPU time (time.process_time) is reported next to wall time: the 2-core machine is shared.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from clearlane.core.recon.codes import Outcome
from clearlane.core.recon.matching import DAY_MS, MatchRules, match
from clearlane.core.recon.records import ReconRecord

T0 = 1_795_132_800_000


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _typo(text: str, rng: random.Random) -> str:
    """One typo: a character substituted, dropped, added, or two neighbours swapped."""
    i = rng.randrange(len(text))
    kind = rng.randrange(4)
    if kind == 0:
        return text[:i] + rng.choice([c for c in _ALNUM if c != text[i]]) + text[i + 1 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + rng.choice(_ALNUM) + text[i:]
    j = min(i + 1, len(text) - 1)
    return text[:i] + text[j] + text[i] + text[j + 1 :] if j > i else text[:i] + "X" + text[i + 1 :]


@dataclass(frozen=True)
class Noise:
    """Shares of the external lines given each kind of noise (drawn independently)."""

    date: float = 0.0
    amount: float = 0.0
    typo: float = 0.0
    split: float = 0.05


def _amount(amount: int, noise: Noise, rng: random.Random) -> int:
    if not noise.amount or rng.random() >= noise.amount:  # no draw without noise: the same corpus as before
        return amount
    most = abs(amount) * 50 // 10_000  # 0.5 %
    return amount + rng.randint(-most, most)


def corpus(
    n: int, m: int, noise: Noise, seed: int = 7
) -> tuple[list[ReconRecord], list[ReconRecord], dict[str, str]]:
    """External and internal records and the truth (external id -> internal id)."""
    rng = random.Random(seed)
    internal, external, truth = [], [], {}
    for i in range(m):
        account = f"P{i % 5000:05d}"
        internal.append(
            ReconRecord(
                f"i{i:08d}",
                "net_instruction",
                "USD",
                rng.randrange(1, 10**9),
                T0 + rng.randrange(DAY_MS),
                f"B{i:08d}/{account}",
                account,
            )
        )
    partners = rng.sample(range(m), min(n, m))
    j = 0
    for i in partners:
        if j >= n:
            break
        rec = internal[i]
        kind = rng.random()
        at = rec.at_ms + (rng.choice((-DAY_MS, DAY_MS)) if rng.random() < noise.date else 0)
        ref = _typo(rec.reference, rng) if rng.random() < noise.typo else rec.reference
        amount = _amount(rec.amount_minor, noise, rng)
        if kind < 1 - noise.split - 0.15:
            external.append(ReconRecord(f"e{j:08d}", "statement_line", "USD", amount, at, ref, "", f"S{j}"))
            truth[f"e{j:08d}"] = rec.record_id
            j += 1
        elif kind < 1 - noise.split:
            external.append(ReconRecord(f"e{j:08d}", "statement_line", "USD", amount, at, "", "", f"S{j}"))
            truth[f"e{j:08d}"] = rec.record_id
            j += 1
        elif j + 1 < n:
            half = amount // 2
            for part in (half, amount - half):
                external.append(
                    ReconRecord(f"e{j:08d}", "statement_line", "USD", part, at, "", rec.account, f"S{j}")
                )
                truth[f"e{j:08d}"] = rec.record_id
                j += 1
    return external, internal, truth


def bench_match(n: int, m: int, noise: Noise, rules: MatchRules, profile: bool = False) -> None:
    t = time.perf_counter()
    external, internal, truth = corpus(n, m, noise)
    print(
        f"corpus: {len(external):,} external x {len(internal):,} internal in {time.perf_counter() - t:.1f} s"
    )
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    result = match(external, internal, rules)
    if profiler is not None:
        profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    partner = {}
    for g in result.groups:
        if g.outcome is Outcome.MATCHED:
            for e in g.external:
                partner[e] = set(g.internal)
    correct = sum(1 for e, i in truth.items() if i in partner.get(e, ()))
    matched = sum(1 for e in partner)
    print(f"match: {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {_rss_mib():,.0f} MiB")
    print(f"outcomes: {result.counts()}")
    by_reason: dict[str, int] = {}
    for g in result.groups:
        by_reason[g.reason.name] = by_reason.get(g.reason.name, 0) + len(g.external)
    print(f"external lines by reason: {dict(sorted(by_reason.items()))}")
    print(f"precision {correct / max(matched, 1):.4%}  recall {correct / max(len(truth), 1):.4%}")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(20)


def _camt(path: Path, entries: int, per_statement: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("<?xml version='1.0' encoding='UTF-8'?><Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.02'>"
                  "<BkToCstmrStmt><GrpHdr><MsgId>BENCH</MsgId></GrpHdr>")  # fmt: skip
        for s in range(0, entries, per_statement):
            count = min(per_statement, entries - s)
            out.write(f"<Stmt><Id>S{s}</Id><ElctrncSeqNb>{s}</ElctrncSeqNb><Acct><Id><IBAN>CH00</IBAN></Id><Ccy>USD</Ccy></Acct>"
                      "<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy='USD'>0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-20</Dt></Dt></Bal>"
                      f"<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy='USD'>{count * 1.25:.2f}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-20</Dt></Dt></Bal>")  # fmt: skip
            for i in range(count):
                out.write(f"<Ntry><Amt Ccy='USD'>1.25</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>2026-11-20</Dt></BookgDt>"
                          f"<ValDt><Dt>2026-11-20</Dt></ValDt><AcctSvcrRef>A{s + i}</AcctSvcrRef><NtryDtls><TxDtls><Refs>"
                          f"<EndToEndId>E{s + i}</EndToEndId></Refs><RmtInf><Ustrd>batch {s + i}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>")  # fmt: skip
            out.write("</Stmt>")
        out.write("</BkToCstmrStmt></Document>")


def bench_parse(entries: int, per_statement: int) -> None:
    from clearlane.node.recon.camt import iter_statements

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.camt053.xml"
        _camt(path, entries, per_statement)
        size = path.stat().st_size
        wall, cpu = time.perf_counter(), time.process_time()
        count = gaps = 0
        for statement in iter_statements(path):
            count += len(statement.entries)
            gaps += statement.balance_gap() != 0
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"parse: {count:,} entries ({size / 2**20:,.0f} MiB) in {wall:.1f} s wall, {cpu:.1f} s CPU, "
          f"{count / wall:,.0f} entries/s, peak RSS {_rss_mib():,.0f} MiB, unbalanced statements {gaps}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    m = sub.add_parser("match")
    m.add_argument("--n", type=int, default=1_000_000)
    m.add_argument("--m", type=int, default=1_000_000)
    m.add_argument("--noise", type=float, default=None, help="date and typo share at once")
    m.add_argument("--date-noise", type=float, default=0.0)
    m.add_argument("--amount-noise", type=float, default=0.0)
    m.add_argument("--typo-noise", type=float, default=0.0)
    m.add_argument("--split-share", type=float, default=0.05)
    m.add_argument("--tolerance-bps", type=int, default=None)
    m.add_argument("--fuzzy", type=int, default=80)
    m.add_argument("--profile", action="store_true")
    p = sub.add_parser("parse")
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--per-statement", type=int, default=10_000)
    args = parser.parse_args()
    if args.what == "match":
        date, typo = (
            (args.noise, args.noise) if args.noise is not None else (args.date_noise, args.typo_noise)
        )
        noise = Noise(date, args.amount_noise, typo, args.split_share)
        bps = args.tolerance_bps if args.tolerance_bps is not None else (50 if args.amount_noise else 0)
        rules = MatchRules(
            window_ms=3 * DAY_MS,
            tolerance_bps=(("USD", bps),) if bps else (),
            fuzzy_min_similarity=args.fuzzy,
        )
        print(f"noise {noise}, tolerance {bps} bps, fuzzy cut-off {args.fuzzy} %")
        bench_match(args.n, args.m, noise, rules, args.profile)
    else:
        bench_parse(args.entries, args.per_statement)


if __name__ == "__main__":
    main()
