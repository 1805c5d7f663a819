#!/usr/bin/env python3
"""Renders the criterion results of `cargo bench --bench core` as markdown.

    bench/criterion_table.py [TARGET_DIR] [docs/benchmarks.md | -]

Reads every target/criterion/**/new/{benchmark,estimates}.json, prints the
median per benchmark, puts each cold verification beside the raw
jsonwebtoken call of the same run, and checks the goals. With a file
argument it replaces the text between the CRITERION markers.
"""

import json
import os
import sys
from pathlib import Path

BEGIN = "<!-- BEGIN GENERATED: criterion -->"
END = "<!-- END GENERATED: criterion -->"


def load(target):
    results = {}
    for bench in sorted(Path(target, "criterion").glob("**/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        results[(meta["group_id"], meta.get("function_id") or "")] = est["median"]["point_estimate"]
    return results


def ns(v):
    if v is None:
        return "–"
    return f"{v / 1000:.2f} µs" if v >= 1000 else f"{v:.0f} ns"


def render(results):
    out = []
    note = os.environ.get("BENCH_NOTE")
    if note:
        out += [f"**{note}**", ""]
    get = results.get
    cached = get(("decision", "cached"))
    uncached = get(("decision", "uncached_eddsa"))
    out.append("| benchmark | median | goal | verdict |")
    out.append("|---|---|---|---|")
    if cached is not None:
        out.append(f"| cached decision (`Authorizer::check`, full `CheckInput` path) | {ns(cached)} | < 2 µs | "
                   f"{'met' if cached < 2000 else '**missed**'} |")
    if uncached is not None:
        out.append(f"| uncached decision, EdDSA (token cache off) | {ns(uncached)} | – | – |")
    for fn in ("last_rule", "mid_rule", "no_match", "normalize_and_last_rule"):
        v = get(("rules/100", fn))
        if v is not None:
            verdict = ("met" if v < 1000 else "**missed**") if fn != "normalize_and_last_rule" else "–"
            out.append(f"| 100 rules: `RuleSet::find`, {fn.replace('_', ' ')} | {ns(v)} | "
                       f"{'< 1 µs' if verdict != '–' else '–'} | {verdict} |")
    out.append("")
    out.append("| algorithm | gatehouse `Verifier::verify` (cold) | raw `jsonwebtoken::decode` | ratio | goal ≤ 1.15× |")
    out.append("|---|---|---|---|---|")
    for alg in ("EdDSA", "RS256", "PS256", "ES256", "HS256"):
        gh = get((f"verify/{alg}", "gatehouse"))
        raw = get((f"verify/{alg}", "jsonwebtoken"))
        if gh is None and raw is None:
            continue
        r = gh / raw if gh and raw else None
        verdict = "–" if r is None else ("met" if r <= 1.15 else "**missed**")
        out.append(f"| {alg} | {ns(gh)} | {ns(raw)} | {'–' if r is None else f'{r:.2f}×'} | {verdict} |")
    return "\n".join(out)


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else "target"
    dest = sys.argv[2] if len(sys.argv) > 2 else "-"
    text = render(load(target))
    if dest == "-":
        print(text)
        return
    path = Path(dest)
    doc = path.read_text()
    if BEGIN not in doc or END not in doc:
        doc = doc.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
