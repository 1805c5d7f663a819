#!/usr/bin/env python3
"""Turns scripts/bench runs into markdown.

    bench/render.py RUN_DIR docs/benchmarks.md   # replace the generated section
    bench/render.py RUN_DIR -                    # print it
    bench/render.py FULL_RUN SESSIONS_RUN docs/benchmarks.md

RUN_DIR holds results.tsv and meta.txt (and lookups.tsv when it ran the
sessions group). With several runs, each later run's groups (the `kind`
column) replace the same groups of the earlier ones, so a partial run can
be shown beside a full one; the first run's meta describes the page and
the others are named beside it. Each setup's rounds are combined by their
median; ratios are medians over medians. Only the text between the
BEGIN/END GENERATED markers of the target file is replaced.
"""

import statistics
import sys
from pathlib import Path

BEGIN = "<!-- BEGIN GENERATED: scripts/bench -->"
END = "<!-- END GENERATED: scripts/bench -->"

LABELS = {
    ("envoy", "none"): "Envoy, no auth filter (a)",
    ("envoy", "jwt_nocache_single"): "Envoy jwt_authn, no cache, one token reused (b)",
    ("envoy", "jwt_cache100_single"): "Envoy jwt_authn, default cache (100), one token reused (b)",
    ("envoy", "jwt_nocache_rotating"): "Envoy jwt_authn, no cache, rotating (b)",
    ("envoy", "jwt_cache100_rotating"): "Envoy jwt_authn, default cache (100), rotating (b)",
    ("envoy", "jwt_cache_all_rotating"): "Envoy jwt_authn, cache holds every token, rotating (b)",
    ("envoy", "jwt_cache100_identity_rotating"): "Envoy jwt_authn, default cache (100), rotating, with gatehouse's identity output (3 headers + payload metadata) (b')",
    ("envoy", "ext_noop_rotating"): "Envoy ext_authz → no-op server, rotating (c)",
    ("envoy", "ext_noop_identity_rotating"): "Envoy ext_authz → no-op server answering with identity headers + claims metadata, rotating (c')",
    ("envoy", "ext_gatehouse_single"): "Envoy ext_authz → gatehouse, one token reused",
    ("envoy", "ext_gatehouse_rotating"): "**Envoy ext_authz → gatehouse, rotating (warm cache)**",
    ("grpc", "noop"): "no-op Check server",
    ("grpc", "gatehouse_warm"): "**gatehouse, warm cache**",
    ("grpc", "raw_verify"): "raw verification ceiling (jsonwebtoken per call, no cache)",
    ("grpc", "gatehouse_cold"): "**gatehouse, token cache off (every call verifies)**",
    ("rate", "noop_half"): "no-op Check server",
    ("rate", "gatehouse_warm_half"): "gatehouse, warm cache",
    ("nginx", "ceiling"): "nginx → internal location answering 200 (ceiling)",
    ("nginx", "noop_rotating"): "nginx → no-op HTTP authorizer (empty 200, same axum/hyper stack)",
    ("nginx", "gatehouse_rotating"): "**nginx → gatehouse, rotating (warm cache)**",
    ("nginx", "python_rotating"): "nginx → FastAPI + PyJWT PyJWKClient (uvicorn)",
    ("session", "jwt_warm"): "JWT, warm token cache (rotating minted JWTs, through the introspection-warm gatehouse and its door)",
    ("session", "jwt_sid_warm"): "**Better Auth JWT bound to its session (`session_claim: sid`, Postgres), warm**",
    ("session", "org_warm"): "**organization rule (`/orgs/{org_id}/**`, Postgres `\"member\"`), Better Auth JWT, warm**",
    ("session", "introspect_warm"): "**introspection backend, warm session cache**",
    ("session", "introspect_cold"): "introspection backend, cold (`cache_ttl: 0s`, every request a get-session)",
    ("session", "postgres_warm"): "**Postgres backend, warm session cache**",
    ("session", "postgres_cold"): "Postgres backend, cold (`cache_ttl: 0s`, every request a query)",
}


REDIS_LABELS = {
    ("redis", "rl_off"): "warm gatehouse, no rate limit (connected to Redis)",
    ("redis", "rl_on"): "**warm gatehouse, one rate-limit policy (`key: [sub]`) on every path**",
    ("redis", "rv_loaded"): "**warm gatehouse, no rate limit, 100,000 revocations loaded**",
    ("redis_rate", "rl_off_half"): "no rate limit, paced at half its peak",
    ("redis_rate", "rl_on_half"): "**one policy, paced at the same rate**",
}


def num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def tsv(path):
    """Rows of a TSV file with a header line, as dicts ([] when absent)."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        cells = line.split("\t")
        rows.append(dict(zip(header, cells + [""] * (len(header) - len(cells)))))
    return rows


def load_one(run_dir):
    meta = {}
    meta_file = run_dir / "meta.txt"
    if meta_file.exists():
        for line in meta_file.read_text().splitlines():
            key, _, value = line.partition("=")
            meta[key] = value
    return tsv(run_dir / "results.tsv"), tsv(run_dir / "lookups.tsv"), meta


def load(run_dirs):
    """Merges runs: a later run's kinds replace the earlier runs' rows of
    those kinds. Returns rows, lookups, the first run's meta and, for each
    later run, (its name, its meta, the kinds it contributed)."""
    rows, lookups, meta = load_one(run_dirs[0])
    others = []
    for run_dir in run_dirs[1:]:
        more, more_lookups, more_meta = load_one(run_dir)
        kinds = list(dict.fromkeys(r["kind"] for r in more))
        rows = [r for r in rows if r["kind"] not in kinds] + more
        lookups = [r for r in lookups if r["kind"] not in kinds] + more_lookups
        if "rate" in kinds and "rate" in more_meta:
            meta["rate"] = more_meta["rate"]  # the pacing belongs to the run that measured it
        others.append((run_dir.name, more_meta, kinds))
    return rows, lookups, meta, others


def summarize(rows):
    """(kind, setup) → medians over rounds, in first-seen order."""
    out = {}
    for row in rows:
        key = (row["kind"], row["setup"])
        out.setdefault(key, []).append(row)
    summary = {}
    for key, group in out.items():
        summary[key] = {
            "rps": med([num(r["rps"]) for r in group]),
            "rps_all": [num(r["rps"]) for r in group if num(r["rps"]) is not None],
            "p50": med([num(r["p50_us"]) for r in group]),
            "p99": med([num(r["p99_us"]) for r in group]),
            "non_ok": sum(int(num(r["non_ok"]) or 0) for r in group),
            "envoy_cpu": med([num(r["envoy_cpu_us_per_req"]) for r in group]),
            "authz_cpu": med([num(r["authz_cpu_us_per_req"]) for r in group]),
            "rounds": group,
        }
    return summary


def fmt_int(v):
    return "–" if v is None else f"{v:,.0f}"


def fmt_us(v):
    if v is None:
        return "–"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


def fmt_cpu(v):
    return "–" if v is None else f"{v:.1f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def spread(s):
    values = s["rps_all"]
    if len(values) < 2:
        return ""
    return f" ({min(values):,.0f}–{max(values):,.0f})"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def goal(ok):
    if ok is None:
        return "not measured"
    return "met" if ok else "**missed**"


def render(run_dirs):
    rows, lookups, meta, others = load(run_dirs)
    run_dir = run_dirs[0]
    s = summarize(rows)
    get = lambda kind, setup: s.get((kind, setup))  # noqa: E731
    rps = lambda kind, setup: (get(kind, setup) or {}).get("rps")  # noqa: E731
    out = []
    out.append(f"Run `{run_dir.name}` ({meta.get('date', '?')}), gatehouse `{meta.get('gatehouse', '?')}`.")
    out.append("")
    if meta.get("note"):
        out.append(f"**{meta['note']}**")
        out.append("")
    for name, other, kinds in others:
        out.append(
            f"The {', '.join(kinds)} rows come from run `{name}` ({other.get('date', '?')}), gatehouse "
            f"`{other.get('gatehouse', '?')}`: {other.get('rounds', '?')} rounds of {other.get('secs', '?')} s, "
            f"load average at its end {other.get('load_avg', '?')}."
        )
        if other.get("note"):
            out.append(f"**{other['note']}**")
        out.append("")
    out.append(
        f"Each setup ran {meta.get('rounds', '?')} rounds of {meta.get('secs', '?')} s "
        f"(after {meta.get('warmup', '?')} s of warm-up), alternating setups within each round; "
        "the table gives the median over rounds, with the range of rounds in brackets. "
        "Servers (proxy, authorizer, upstream) pinned to core 0, load generator to core 1. "
        f"{meta.get('tokens', '?')} distinct EdDSA tokens rotating unless the row says one token is reused. "
        f"gatehouse log filter: `{meta.get('gatehouse_log', '?')}`. "
        f"Load average when the run ended: {meta.get('load_avg', '?')}."
    )
    out.append("")

    envoy = [k for k in s if k[0] == "envoy"]
    if envoy:
        none = rps("envoy", "none")
        noop = rps("envoy", "ext_noop_rotating")
        jwt100 = rps("envoy", "jwt_cache100_rotating")
        out.append(f"### Through Envoy (wrk, 1 thread, {meta.get('conns', '?')} connections, Envoy --concurrency 1)")
        out.append("")
        body = []
        for key in envoy:
            v = s[key]
            body.append([
                LABELS.get(key, key[1]),
                fmt_int(v["rps"]) + spread(v),
                ratio(v["rps"], none),
                ratio(v["rps"], noop),
                ratio(v["rps"], jwt100),
                fmt_us(v["p50"]),
                fmt_us(v["p99"]),
                fmt_cpu(v["envoy_cpu"]),
                fmt_cpu(v["authz_cpu"]),
                v["non_ok"],
            ])
        out.append(table(
            ["setup", "req/s", "÷ no filter", "÷ no-op ext_authz", "÷ jwt_authn (100)",
             "p50", "p99", "Envoy CPU µs/req", "authorizer CPU µs/req", "non-2xx"],
            body,
        ))
        out.append("")

    grpc = [k for k in s if k[0] == "grpc"]
    if grpc:
        noop = rps("grpc", "noop")
        raw = rps("grpc", "raw_verify")
        out.append(
            f"### Direct gRPC `Check` (examples/check_load, {meta.get('grpc_conc', '?')} calls in flight "
            f"over {meta.get('grpc_conns', '?')} HTTP/2 connections)"
        )
        out.append("")
        body = []
        for key in grpc:
            v = s[key]
            body.append([
                LABELS.get(key, key[1]),
                fmt_int(v["rps"]) + spread(v),
                ratio(v["rps"], noop),
                ratio(v["rps"], raw),
                fmt_us(v["p50"]),
                fmt_us(v["p99"]),
                fmt_cpu(v["authz_cpu"]),
                v["non_ok"],
            ])
        out.append(table(
            ["setup", "calls/s", "÷ no-op", "÷ raw verify", "p50", "p99", "server CPU µs/call", "not OK"],
            body,
        ))
        out.append("")

    rate = [k for k in s if k[0] == "rate"]
    if rate:
        base = get("rate", "noop_half")
        out.append(f"### Latency at half of gatehouse's peak ({fmt_int(num(meta.get('rate')))} calls/s, direct gRPC)")
        out.append("")
        body = []
        for key in rate:
            v = s[key]
            added = None if base is None or v["p99"] is None else v["p99"] - base["p99"]
            if key[1] == "noop_half" or added is None:
                shown = "–"
            elif added <= 0:
                shown = f"none (p99 {fmt_us(-added)} lower)"
            else:
                shown = fmt_us(added)
            body.append([LABELS.get(key, key[1]), fmt_int(v["rps"]), fmt_us(v["p50"]), fmt_us(v["p99"]), shown])
        out.append(table(["setup", "calls/s achieved", "p50", "p99", "added p99 vs no-op"], body))
        out.append("")

    nginx = [k for k in s if k[0] == "nginx"]
    if nginx:
        ceiling = rps("nginx", "ceiling")
        python = rps("nginx", "python_rotating")
        noop = rps("nginx", "noop_rotating")
        out.append(f"### Through nginx `auth_request` (wrk, 1 thread, {meta.get('conns', '?')} connections, 1 worker)")
        out.append("")
        body = []
        for key in nginx:
            v = s[key]
            body.append([
                LABELS.get(key, key[1]),
                fmt_int(v["rps"]) + spread(v),
                ratio(v["rps"], ceiling),
                ratio(v["rps"], noop),
                ratio(v["rps"], python),
                fmt_us(v["p50"]),
                fmt_us(v["p99"]),
                fmt_cpu(v["envoy_cpu"]),
                fmt_cpu(v["authz_cpu"]),
                v["non_ok"],
            ])
        out.append(table(
            ["setup", "req/s", "÷ ceiling", "÷ no-op", "÷ Python", "p50", "p99", "nginx CPU µs/req",
             "authorizer CPU µs/req", "non-2xx"],
            body,
        ))
        out.append("")

    sessions = [k for k in s if k[0] == "session"]
    if sessions:
        jwt = get("session", "jwt_warm") or {}
        per_req = {}
        for r in lookups:
            if r.get("kind") != "session":
                continue
            n, reqs = num(r.get("lookups")), num(r.get("requests"))
            if n is not None and reqs:
                per_req.setdefault(r["setup"], []).append(n / reqs)
        out.append(
            f"### Better Auth sessions through nginx `auth_request` (wrk, 1 thread, "
            f"{meta.get('conns', '?')} connections, browser-style requests carrying only the session cookie)"
        )
        out.append("")
        measured = any(s[k]["rps"] is not None for k in sessions)
        if measured:
            out.append(
                "The real Better Auth server (`tests/betterauth`, Postgres-backed) signed up the sessions "
                "through its own HTTP API; wrk rotates their signed cookies. Each backend setup has its own "
                "gatehouse behind its own copy of the nginx front config; the Better Auth server is pinned "
                "to core 0 with the servers, the machine's PostgreSQL is not pinned. Warm: `cache_ttl: 10m`, "
                "every session looked up once during the warm-up. `BETTER_AUTH_SECRET` is set, so cookie "
                "signatures are checked before any lookup. The two Better Auth JWT rows send each signed-up "
                "user's own JWT (`/api/auth/token`, EdDSA, verified by Better Auth's JWKS) through a gatehouse "
                "with `session.postgres` and `cache_ttl: 10m`, every token seen during the warm-up: one whose "
                "JWTs carry `sid` and are checked against their session row, and one with an organization rule "
                "over `/orgs/{org_id}/**` (each user created one organization and asks for its own, "
                "`x-org-id`/`x-org-role` passed on). \"Cost ÷ JWT\" is gatehouse CPU per request over "
                "the warm JWT row's; lookups/req counts get-session calls (introspection, exact) or committed "
                "transactions in the session database (Postgres, from `pg_stat_database`, which PostgreSQL flushes up "
                "to seconds late: approximate, and it can include the previous row's last lookups)."
            )
            out.append("")
        body = []
        for key in sessions:
            v = s[key]
            looked = med(per_req.get(key[1], []))
            body.append([
                LABELS.get(key, key[1]),
                "pending" if v["rps"] is None else fmt_int(v["rps"]) + spread(v),
                "–" if key[1] == "jwt_warm" else ratio(v["rps"], jwt.get("rps")),
                fmt_us(v["p50"]),
                fmt_us(v["p99"]),
                fmt_cpu(v["authz_cpu"]),
                "–" if key[1] == "jwt_warm" else ratio(v["authz_cpu"], jwt.get("authz_cpu")),
                "–" if looked is None else f"{looked:.2f}",
                "–" if v["rps"] is None else v["non_ok"],
            ])
        out.append(table(
            ["setup", "req/s", "÷ warm JWT", "p50", "p99", "gatehouse CPU µs/req", "cost ÷ JWT",
             "lookups/req", "non-2xx"],
            body,
        ))
        out.append("")

    memory = [r for r in rows if r["kind"] == "memory"]
    if memory:
        out.append("### Memory (VmRSS of `gatehouse serve`)")
        out.append("")
        by = {}
        for r in memory:
            by.setdefault(r["setup"], []).append(r)
        body = []
        for setup, group in by.items():
            cells = {r["round"]: num(r["requests"]) for r in group}
            idle = cells.get("1")
            points = sorted((int(k), v) for k, v in cells.items() if k != "1")
            desc = ", ".join(
                f"{n:,} tokens: {v / 1024:.1f} MiB" for n, v in points if v is not None
            )
            body.append([setup.replace("_", " "), "–" if idle is None else f"{idle / 1024:.1f} MiB", desc or "–"])
        out.append(table(["token cache", "idle", "after distinct cached tokens"], body))
        out.append("")

    # Goals from the issues, computed from this run.
    redis_rows = [k for k in s if k[0] in ("redis", "redis_rate")]
    script = None
    calls = None
    for run_dir in run_dirs:
        rows_file = run_dir / "redis_script.tsv"
        if rows_file.exists():
            parsed = tsv(rows_file)
            script = parsed[-1] if parsed else script
        calls_file = run_dir / "redis_calls.tsv"
        if calls_file.exists():
            parsed = tsv(calls_file)
            calls = parsed[-1] if parsed else calls
    if redis_rows:
        off = rps("redis", "rl_off")
        out.append(
            "### Rate limits (direct gRPC `Check`, Redis at 127.0.0.1:6379, the same warm gatehouse "
            "with and without one policy on every path)"
        )
        out.append("")
        body = []
        for key in redis_rows:
            v = s[key]
            body.append([
                REDIS_LABELS.get(key, key[1]),
                fmt_int(v["rps"]) + spread(v),
                ratio(v["rps"], off) if key[0] == "redis" else "–",
                fmt_us(v["p50"]),
                fmt_us(v["p99"]),
                fmt_cpu(v["authz_cpu"]),
                v["non_ok"],
            ])
        out.append(table(["setup", "calls/s", "÷ no policy", "p50", "p99", "gatehouse CPU µs/call", "not OK"],
                         body))
        out.append("")
        if script is not None:
            out.append(
                f"The rate-limit script itself (gatehouse's `gatehouse_store_duration_seconds{{op=\"rate_limit\"}}` "
                f"over the paced runs, {fmt_int(num(script.get('observations')))} calls, interpolated within "
                f"its buckets): p50 {fmt_us(num(script.get('p50_us')))}, p99 {fmt_us(num(script.get('p99_us')))}."
            )
            out.append("")
        if calls is not None:
            checks, script_calls = num(calls.get("checks")), num(calls.get("script_calls"))
            per_call = "?" if not checks or not script_calls else f"{checks / script_calls:.1f}"
            out.append(
                f"Over the rate-limited gatehouse's runs: {fmt_int(checks)} checks in {fmt_int(script_calls)} "
                f"script calls ({per_call} checks per call: the batcher at work), "
                f"{fmt_int(num(calls.get('store_errors')))} store errors (each answered per replica), and Redis's own "
                f"CPU {calls.get('redis_cpu_us_per_check') or '?'} µs per check, taken from the same two cores."
            )
            out.append("")

    out.append("### Goals")
    out.append("")
    g = []
    gh_env = rps("envoy", "ext_gatehouse_rotating")
    if gh_env is not None:
        noop = rps("envoy", "ext_noop_rotating")
        jwt100 = rps("envoy", "jwt_cache100_rotating")
        g.append(["Envoy+gatehouse ≥ 0.9× Envoy+no-op ext_authz", ratio(gh_env, noop),
                  goal(None if noop is None else gh_env >= 0.9 * noop)])
        g.append(["Envoy+gatehouse ≥ 1.15× jwt_authn with its default cache", ratio(gh_env, jwt100),
                  goal(None if jwt100 is None else gh_env >= 1.15 * jwt100)])
        noop_id = rps("envoy", "ext_noop_identity_rotating")
        if noop_id is not None:
            g.append(["(same answer) Envoy+gatehouse ÷ Envoy+no-op answering with identity (c')",
                      ratio(gh_env, noop_id), "–"])
        jwt_id = rps("envoy", "jwt_cache100_identity_rotating")
        if jwt_id is not None:
            g.append(["(same output) Envoy+gatehouse ÷ jwt_authn default cache with identity output (b')",
                      ratio(gh_env, jwt_id), "–"])
    warm = rps("grpc", "gatehouse_warm")
    if warm is not None:
        noop = rps("grpc", "noop")
        g.append(["direct gRPC, warm ≥ 0.9× no-op server", ratio(warm, noop),
                  goal(None if noop is None else warm >= 0.9 * noop)])
    cold = rps("grpc", "gatehouse_cold")
    if cold is not None:
        raw = rps("grpc", "raw_verify")
        g.append(["direct gRPC, cold ≥ 0.95× raw verification ceiling", ratio(cold, raw),
                  goal(None if raw is None else cold >= 0.95 * raw)])
    half = get("rate", "gatehouse_warm_half")
    base = get("rate", "noop_half")
    if half is not None and base is not None and half["p99"] is not None and base["p99"] is not None:
        added = half["p99"] - base["p99"]
        g.append(["added p99 < 1 ms at half the peak rate", fmt_us(max(added, 0)), goal(added < 1000)])
    gh_ng = rps("nginx", "gatehouse_rotating")
    if gh_ng is not None:
        ceiling = rps("nginx", "ceiling")
        python = rps("nginx", "python_rotating")
        g.append(["nginx→gatehouse ≥ 0.8× the ceiling", ratio(gh_ng, ceiling),
                  goal(None if ceiling is None else gh_ng >= 0.8 * ceiling)])
        noop_ng = rps("nginx", "noop_rotating")
        if noop_ng is not None and ceiling:
            g.append(["(for scale) nginx→no-op HTTP authorizer ÷ the ceiling", ratio(noop_ng, ceiling), "–"])
            g.append(["(for scale) nginx→gatehouse ÷ nginx→no-op HTTP authorizer", ratio(gh_ng, noop_ng), "–"])
        g.append(["nginx→gatehouse ≥ 20× the Python verifier", ratio(gh_ng, python),
                  goal(None if python is None else gh_ng >= 20 * python)])
    jwt = get("session", "jwt_warm")
    for setup, name in (("jwt_sid_warm", "sid-bound Better Auth JWT"), ("org_warm", "organization rule")):
        v = get("session", setup)
        if jwt is None or v is None or v["rps"] is None or jwt["rps"] is None:
            continue
        g.append([f"warm {name} (Postgres) req/s ≥ warm JWT req/s ÷ 1.1", ratio(v["rps"], jwt["rps"]),
                  goal(v["rps"] * 1.1 >= jwt["rps"])])
    for setup, name in (("introspect_warm", "introspection"), ("postgres_warm", "Postgres")):
        v = get("session", setup)
        if jwt is None or v is None or v["rps"] is None or jwt["rps"] is None:
            continue
        g.append([f"warm session ({name}) req/s ≥ warm JWT req/s ÷ 1.1", ratio(v["rps"], jwt["rps"]),
                  goal(v["rps"] * 1.1 >= jwt["rps"])])
        if v["authz_cpu"] is not None and jwt["authz_cpu"] is not None:
            g.append([f"warm session ({name}) gatehouse CPU/req ≤ 1.1× warm JWT", ratio(v["authz_cpu"], jwt["authz_cpu"]),
                      goal(v["authz_cpu"] <= 1.1 * jwt["authz_cpu"])])
    rl_on, rl_off = rps("redis", "rl_on"), rps("redis", "rl_off")
    if rl_on is not None and rl_off is not None:
        g.append(["one rate-limit policy on ≥ 0.85× off (one Redis round trip per call)", ratio(rl_on, rl_off),
                  goal(rl_on >= 0.85 * rl_off)])
    rv = rps("redis", "rv_loaded")
    if rv is not None and rl_off is not None:
        g.append(["100,000 revocations loaded ≥ 0.98× none (a lookup, not a call)", ratio(rv, rl_off),
                  goal(rv >= 0.98 * rl_off)])
    idle = [num(r["requests"]) for r in memory if r["round"] == "1"]
    if idle:
        g.append(["idle RSS < 30 MiB", f"{max(idle) / 1024:.1f} MiB", goal(max(idle) < 30 * 1024)])
    out.append(table(["goal", "this run", "verdict"], g) if g else "No goal measured in this run.")
    out.append("")

    out.append("### Commands")
    out.append("")
    out.append("```sh")
    out.append(f"{meta.get('invocation', 'scripts/bench')}")
    for _, other, _ in others:
        out.append(f"{other.get('invocation', 'scripts/bench')}")
    out.append("# each wrk setup (after a warm-up run of the same shape):")
    out.append(f"taskset -c 1 wrk -t1 -c{meta.get('conns', '?')} -d{meta.get('secs', '?')}s --latency "
               "-s bench/wrk/rotate.lua http://127.0.0.1:PORT -- TOKENS_FILE")
    out.append("# each session setup: the same with -s bench/wrk/cookies.lua … -- COOKIES_FILE")
    out.append("# the Better Auth JWT rows: -s bench/wrk/rotate.lua … -- JWTS_FILE, "
               "and -s bench/wrk/paths.lua … -- ORG_REQUESTS_FILE (\"/orgs/<id>/items JWT\" lines)")
    out.append("# each direct gRPC setup:")
    out.append(f"taskset -c 1 target/release/examples/check_load --addr 127.0.0.1:PORT --tokens TOKENS_FILE "
               f"--connections {meta.get('grpc_conns', '?')} --concurrency {meta.get('grpc_conc', '?')} "
               f"--duration {meta.get('secs', '?')} --warmup 0")
    out.append("# servers: taskset -c 0 …; Envoy with --concurrency 1; configs in bench/, filled in under target/bench/<run>/conf/")
    out.append("```")
    out.append("")
    out.append("### Machine and tools")
    out.append("")
    out.append(table(["", ""], [[k, f"`{v}`"] for k, v in meta.items()
                                if k in ("cpu", "cores", "mem", "kernel", "envoy", "nginx", "wrk", "rustc")]))
    out.append("")
    return "\n".join(out)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: bench/render.py RUN_DIR [RUN_DIR…] (FILE|-)")
    text = render([Path(d) for d in sys.argv[1:-1]])
    if sys.argv[-1] == "-":
        print(text)
        return
    target = Path(sys.argv[-1])
    doc = target.read_text() if target.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in doc or END not in doc:
        doc = doc.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    target.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
