#!/usr/bin/env python3
"""Renders the criterion results of `cargo bench --bench core` as markdown.

    bench/criterion_table.py [TARGET_DIR] [docs/benchmarks.md | -]

Reads every target/criterion/**/new/{benchmark,estimates}.json, prints the
median per benchmark, puts each cold verification beside the raw
jsonwebtoken call of the same run, and checks the goals. With a file
argument it replaces the text between the CRITERION markers, and the
revocation rows (the warm decision with 0 and 100,000 revocations loaded)
between the CRITERION-REVOCATION markers; a block whose benchmarks were not
run (`cargo bench --bench core -- revocation`) is left as it was.
"""

import json
import os
import sys
from pathlib import Path

BEGIN = "<!-- BEGIN GENERATED: criterion -->"
END = "<!-- END GENERATED: criterion -->"
REV_BEGIN = "<!-- BEGIN GENERATED: criterion-revocation -->"
REV_END = "<!-- END GENERATED: criterion-revocation -->"


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


def render_revocation(results, target_dir="target"):
    """The warm decision over rotating cached tokens with no list, an empty
    one and 100,000 revocations, as throughput relative to the empty list."""
    rows = [(name, results.get(("revocation", name))) for name in ("none", "empty", "100k")]
    empty = results.get(("revocation", "empty"))
    if empty is None:
        return None
    labels = {
        "none": "no revocation list (no Redis)",
        "empty": "revocation list, 0 entries",
        "100k": "revocation list, 100,000 entries",
    }
    paired = {}
    paired_file = Path(target_dir, "criterion", "revocation", "paired.json")
    if paired_file.exists():
        paired = json.loads(paired_file.read_text())
    out = ["| warm decision, 1,000 rotating cached tokens | criterion median | throughput vs 0 entries | "
           "paired median | paired throughput vs 0 entries | goal | verdict |",
           "|---|---|---|---|---|---|---|"]
    for name, v in rows:
        if v is None:
            continue
        ratio = empty / v
        p = paired.get(f"{name}_ns")
        p_empty = paired.get("empty_ns")
        p_ratio = paired.get("ratio_100k_vs_empty") if name == "100k" else (p_empty / p if p and p_empty else None)
        judged = p_ratio if p_ratio is not None else ratio
        goal, verdict = ("≥ 0.98×", "met" if judged >= 0.98 else "**missed**") if name == "100k" else ("–", "–")
        out.append(f"| {labels[name]} | {ns(v)} | {ratio:.3f}× | {ns(p)} | "
                   f"{'–' if p_ratio is None else f'{p_ratio:.3f}×'} | {goal} | {verdict} |")
    if paired:
        out += ["", f"Paired: {paired.get('rounds')} rounds of {paired.get('block')} decisions per setup, "
                "setups alternating; the 100k ratio is the median of the per-round ratios, and it is "
                "what the verdict judges."]
    return "\n".join(out)


def replace_block(doc, begin, end, text):
    if begin not in doc or end not in doc:
        doc = doc.rstrip("\n") + f"\n\n{begin}\n{end}\n"
    head, _, rest = doc.partition(begin)
    _, _, tail = rest.partition(end)
    return f"{head}{begin}\n{text}\n{end}{tail}"


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else "target"
    dest = sys.argv[2] if len(sys.argv) > 2 else "-"
    results = load(target)
    text = render(results) if ("decision", "cached") in results else None
    revocation = render_revocation(results, target)
    if dest == "-":
        print("\n\n".join(t for t in (text, revocation) if t))
        return
    path = Path(dest)
    doc = path.read_text()
    if text is not None:
        doc = replace_block(doc, BEGIN, END, text)
    if revocation is not None:
        doc = replace_block(doc, REV_BEGIN, REV_END, revocation)
    path.write_text(doc)


if __name__ == "__main__":
    main()
