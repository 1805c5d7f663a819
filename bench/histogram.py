#!/usr/bin/env python3
"""Quantiles of a Prometheus histogram over an interval.

    histogram.py METRIC 'LABEL="VALUE"' BEFORE AFTER

BEFORE and AFTER are two scrapes of the same /metrics. Prints a header and
one row: observations, p50 and p99 in microseconds, each interpolated
linearly inside its bucket (so no finer than the bucket bounds).
"""

import re
import sys


def buckets(path, metric, selector):
    pattern = re.compile(r'^' + re.escape(metric) + r'_bucket\{(.*)\} (\S+)$')
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = pattern.match(line.strip())
            if not m or selector not in m.group(1):
                continue
            le = re.search(r'le="([^"]+)"', m.group(1))
            if le:
                out[float(le.group(1))] = float(m.group(2))
    return out


def quantile(cum, q):
    bounds = sorted(cum)
    total = cum[bounds[-1]]
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for b in bounds:
        if cum[b] >= rank:
            if b == float("inf"):
                return prev_bound
            width = cum[b] - prev_count
            frac = 0.0 if width == 0 else (rank - prev_count) / width
            return prev_bound + (b - prev_bound) * frac
        prev_bound, prev_count = b, cum[b]
    return bounds[-1]


def main():
    metric, selector, before, after = sys.argv[1:5]
    a = buckets(before, metric, selector)
    b = buckets(after, metric, selector)
    if not b:
        sys.exit(f"no {metric} buckets with {selector} in {after}")
    cum = {le: b[le] - a.get(le, 0.0) for le in b}
    total = cum.get(float("inf"), 0.0)
    if total <= 0:
        sys.exit("no observations in the interval")
    print("observations\tp50_us\tp99_us")
    print(f"{total:.0f}\t{quantile(cum, 0.5) * 1e6:.0f}\t{quantile(cum, 0.99) * 1e6:.0f}")


if __name__ == "__main__":
    main()
