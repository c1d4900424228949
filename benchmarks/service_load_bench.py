"""Benchmark: the vault service under load and under kill -9 (issue 25), beside a local-vault baseline.

  steady   --clients client threads, each with its own VaultClient, issue keys, file restore requests,
           approve other users' requests (quorum 2), anonymize small photos with sealed originals
           (service jobs) and read them back through `ifadit vault serve`
           (a child process on 127.0.0.1) for --seconds: requests/s, p50/p99 latency per operation
  baseline the same operations, same mix, on a local library vault (no service, same database kind),
           single-threaded, with the checkpoint each service request signs: printed as ratios
  crash    the same load while the service is SIGKILLed --kills times at seeded random moments; after
           each: restart on the same database, unseal 2 of 3, log in, check that every acknowledged
           key, request and approval is there and that `audit verify` says intact
  audit    every acknowledged action exactly once in the audit log, sequence numbers 1..n, verify intact

Exits 1 on any loss, duplicate or verify failure. Loopback only; the service is always killed at the end.

Usage: .venv/bin/python benchmarks/service_load_bench.py [--database sqlite|postgresql+psycopg://...]
       [--clients 16] [--seconds 60] [--kills 20] [--seed 0] [--baseline-seconds 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from service_load import (
    BY_NAME,
    KillReport,
    LoadPlan,
    LoadReport,
    PhaseStats,
    fresh_database,
    percentile,
    run_local_baseline,
    run_service_load,
)


def latency_row(name: str, stats: PhaseStats, latencies: list[float], base: PhaseStats | None) -> str:
    count = len(latencies)
    rate, p50, p99 = count / stats.seconds, percentile(latencies, 0.5), percentile(latencies, 0.99)
    line = f"{name:<15} {count:>7} {rate:>9.1f} {p50 * 1e3:>8.1f} {p99 * 1e3:>8.1f}"
    if base is not None:
        own = [t for n, ts in base.latency.items() if name in ("overall", n) for t in ts]
        if own:
            b_rate, b_p50 = len(own) / base.seconds, percentile(own, 0.5)
            line += f"   {b_rate:>9.1f} {b_p50 * 1e3:>8.2f}   {rate / b_rate:>6.2f}x {p50 / b_p50:>8.1f}x"
    return line


def print_phase(title: str, stats: PhaseStats, base: PhaseStats | None) -> None:
    print(f"\n{title}: {stats.count} acknowledged operations in {stats.seconds:.1f} s")
    print(f"{'operation':<15} {'count':>7} {'op/s':>9} {'p50 ms':>8} {'p99 ms':>8}", end="")
    print("   local op/s   p50 ms   op/s ratio  p50 ratio" if base is not None else "")
    for name in BY_NAME:
        if stats.latency.get(name):
            print(latency_row(name, stats, stats.latency[name], base))
    everything = [t for ts in stats.latency.values() for t in ts]
    print(latency_row("overall", stats, everything, base))
    if stats.failures:
        print("not acknowledged: " + ", ".join(f"{k} x{n}" for k, n in sorted(stats.failures.items())))


def print_kills(kills: list[KillReport]) -> None:
    print(
        f"\n{'kill':>4} {'after s':>8} {'in flight':>10} {'unacked':>8} {'acked so far':>13} {'restart s':>10}  check"
    )
    for k in kills:
        check = "ok" if not k.problems else f"{len(k.problems)} LOST: {k.problems[0]}"
        print(
            f"{k.index:>4} {k.after_s:>8.2f} {k.in_flight:>10} {k.unacknowledged:>8} {k.acknowledged:>13} "
            f"{k.restart_s:>10.1f}  {check}; {k.verify}"
        )
    if kills:
        print(
            f"in flight at the kills: {sum(k.in_flight for k in kills)}, not acknowledged: "
            f"{sum(k.unacknowledged for k in kills)}, mean restart (start, unseal, logins, checks): "
            f"{sum(k.restart_s for k in kills) / len(kills):.1f} s"
        )


def print_audit(report: LoadReport) -> None:
    audit = report.audit
    print(f"\naudit log: {audit.entries} entries; {report.verify}")
    print(
        f"{'action':<18} {'acknowledged':>12} {'ok entries':>11}  (more entries: done, answer lost in a kill)"
    )
    for action in sorted(audit.logged | audit.acked):
        print(f"{action:<18} {audit.acked[action]:>12} {audit.logged[action]:>11}")
    print(
        f"lost: {len(audit.lost)}, duplicated: {len(audit.duplicated)}, sequence faults: {len(audit.sequence)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database", default="sqlite", help="'sqlite' (a temporary file) or a PostgreSQL URL"
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads")
    parser.add_argument("--seconds", type=float, default=60.0, help="steady load phase, seconds")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs in the crash phase")
    parser.add_argument("--seed", type=int, default=0, help="seeds the operation mix, shares and kill times")
    parser.add_argument("--baseline-seconds", type=float, default=20.0, help="local-vault baseline, seconds")
    args = parser.parse_args()
    if not (1 <= args.clients <= 64 and 0 < args.seconds <= 600 and 0 <= args.kills <= 100):
        parser.error("bounded: 1..64 clients, 0..600 s, 0..100 kills")
    plan = LoadPlan(clients=args.clients, seconds=args.seconds, kills=args.kills, seed=args.seed)
    print(
        f"vault service load: {plan.clients} clients, {plan.seconds:g} s, {plan.kills} kills, seed {plan.seed}"
    )
    print(f"database {args.database.split('@')[-1]}; {os.cpu_count()} CPUs seen (client threads share them)")
    with tempfile.TemporaryDirectory(prefix="ifadit-service-load-") as name:
        folder = Path(name)
        with fresh_database(args.database, folder, "load_local") as url:
            baseline = run_local_baseline(url, folder, plan, args.baseline_seconds)
        with fresh_database(args.database, folder, "load_service") as url:
            report = run_service_load(url, folder, plan)
    print_phase("steady load through the service (ratios: service / local vault)", report.load, baseline)
    print_phase("local vault baseline, single-threaded", baseline, None)
    print_phase(f"load during the crash phase ({plan.kills} kills)", report.crash, None)
    print_kills(report.kills)
    print_audit(report)
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    print("\nresult: " + ("FAILED" if report.problems else "no loss, no duplicate, audit log intact"))
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
