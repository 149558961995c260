"""Reconciliation benchmarks (figures go to docs/PERFORMANCE.md, "Reconciliation").

    .venv/bin/python scripts/bench_recon.py match [--n 1000000] [--m 1000000] [--noise 0.0] [--profile]
        N external x M internal records with known truth: 80 % carry the internal reference,
        15 % carry none (amount + date window), 5 % are a net settlement paid in two lines
        (split by account and day); with --noise, that share of the lines is moved +-1 day and
        has its reference typo'd (one character), the rest of M has no partner. Reports wall
        and CPU seconds, peak RSS, outcome counts, precision and recall against the truth;
        --profile prints the 20 costliest functions (cProfile: times inflated, shares are what
        count).
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
from pathlib import Path

from clearlane.core.recon.codes import Outcome
from clearlane.core.recon.matching import DAY_MS, MatchRules, match
from clearlane.core.recon.records import ReconRecord

T0 = 1_795_132_800_000


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _typo(text: str, rng: random.Random) -> str:
    i = rng.randrange(len(text))
    return text[:i] + ("X" if text[i] != "X" else "Y") + text[i + 1 :]


def corpus(
    n: int, m: int, noise: float, seed: int = 7
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
        at = rec.at_ms + (rng.choice((-DAY_MS, DAY_MS)) if rng.random() < noise else 0)
        ref = _typo(rec.reference, rng) if rng.random() < noise else rec.reference
        if kind < 0.80:
            external.append(
                ReconRecord(f"e{j:08d}", "statement_line", "USD", rec.amount_minor, at, ref, "", f"S{j}")
            )
            truth[f"e{j:08d}"] = rec.record_id
            j += 1
        elif kind < 0.95:
            external.append(
                ReconRecord(f"e{j:08d}", "statement_line", "USD", rec.amount_minor, at, "", "", f"S{j}")
            )
            truth[f"e{j:08d}"] = rec.record_id
            j += 1
        elif j + 1 < n:
            half = rec.amount_minor // 2
            for part in (half, rec.amount_minor - half):
                external.append(
                    ReconRecord(f"e{j:08d}", "statement_line", "USD", part, at, "", rec.account, f"S{j}")
                )
                truth[f"e{j:08d}"] = rec.record_id
                j += 1
    return external, internal, truth


def bench_match(n: int, m: int, noise: float, profile: bool = False) -> None:
    t = time.perf_counter()
    external, internal, truth = corpus(n, m, noise)
    print(
        f"corpus: {len(external):,} external x {len(internal):,} internal in {time.perf_counter() - t:.1f} s"
    )
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    result = match(external, internal, MatchRules(window_ms=3 * DAY_MS))
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
    m.add_argument("--noise", type=float, default=0.0)
    m.add_argument("--profile", action="store_true")
    p = sub.add_parser("parse")
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--per-statement", type=int, default=10_000)
    args = parser.parse_args()
    if args.what == "match":
        bench_match(args.n, args.m, args.noise, args.profile)
    else:
        bench_parse(args.entries, args.per_statement)


if __name__ == "__main__":
    main()
