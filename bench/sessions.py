#!/usr/bin/env python3
"""Creates the session set of the sessions benchmark through Better Auth's
own HTTP API, and writes one `Cookie` header value per line.

    bench/sessions.py BASE_URL COUNT OUT_FILE

Each line is a fresh user's sign-up (`POST /api/auth/sign-up/email`), whose
answer sets the session cookie: `better-auth.session_token=<url-encoded
TOKEN.SIG>`, written exactly as Better Auth set it. Sign-ups run a few at a
time; the password hashing on the server is what takes the time. Nothing
here talks to the database directly.
"""

import json
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

COOKIE = "better-auth.session_token="
PARALLEL = 4


def sign_up(base, n):
    body = json.dumps({
        "email": f"bench-{n}@bench.example",
        "password": f"bench-password-{n}",
        "name": f"Bench User {n}",
    }).encode()
    req = urllib.request.Request(
        f"{base}/api/auth/sign-up/email",
        data=body,
        method="POST",
        headers={"content-type": "application/json", "origin": base},
    )
    with urllib.request.urlopen(req, timeout=60) as res:
        for value in res.headers.get_all("set-cookie") or []:
            pair = value.split(";", 1)[0].strip()
            if pair.startswith(COOKIE):
                return pair
    raise RuntimeError(f"sign-up {n}: no session cookie in the answer")


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: bench/sessions.py BASE_URL COUNT OUT_FILE")
    base, count, out = sys.argv[1].rstrip("/"), int(sys.argv[2]), sys.argv[3]
    with ThreadPoolExecutor(PARALLEL) as pool:
        cookies = list(pool.map(lambda n: sign_up(base, n), range(count)))
    if len(set(cookies)) != count:
        sys.exit("sessions.py: duplicate session cookies")
    with open(out, "w") as f:
        f.write("".join(c + "\n" for c in cookies))


if __name__ == "__main__":
    main()
