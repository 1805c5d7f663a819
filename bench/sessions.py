#!/usr/bin/env python3
"""Creates the session set of the sessions benchmark through Better Auth's
own HTTP API, and writes one `Cookie` header value per line.

    bench/sessions.py BASE_URL COUNT OUT_FILE [--jwts FILE] [--orgs FILE]
    bench/sessions.py --refresh BASE_URL OUT_FILE [--jwts FILE] [--orgs FILE]

Each line is a fresh user's sign-up (`POST /api/auth/sign-up/email`), whose
answer sets the session cookie: `better-auth.session_token=<url-encoded
TOKEN.SIG>`, written exactly as Better Auth set it. Sign-ups run a few at a
time; the password hashing on the server is what takes the time. Nothing
here talks to the database directly.

Optional outputs, line N of each belonging to the user of line N of
OUT_FILE:
  --orgs FILE  each user creates an organization
               (`POST /api/auth/organization/create`, which makes the
               creator its owner; needs the organization plugin), and the
               line is `/orgs/<organization id>/items <JWT>`: the path of the
               user's own organization, a space, the user's JWT.
  --jwts FILE  the user's JWT (`GET /api/auth/token` with the session
               cookie), one per line.

Better Auth's JWTs expire 15 minutes after they are issued. `--refresh`
fetches new JWTs for the sessions of an existing OUT_FILE and rewrites the
JWT file and the JWT half of each organization line, keeping the paths.
"""

import argparse
import json
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

COOKIE = "better-auth.session_token="
PARALLEL = 4


def call(base, method, path, body=None, cookie=None):
    headers = {"origin": base}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if cookie:
        headers["cookie"] = cookie
    req = urllib.request.Request(f"{base}{path}", data=data, method=method, headers=headers)
    return urllib.request.urlopen(req, timeout=60)


def sign_up(base, n):
    body = {
        "email": f"bench-{n}@bench.example",
        "password": f"bench-password-{n}",
        "name": f"Bench User {n}",
    }
    with call(base, "POST", "/api/auth/sign-up/email", body) as res:
        for value in res.headers.get_all("set-cookie") or []:
            pair = value.split(";", 1)[0].strip()
            if pair.startswith(COOKIE):
                return pair
    raise RuntimeError(f"sign-up {n}: no session cookie in the answer")


def jwt(base, cookie):
    with call(base, "GET", "/api/auth/token", cookie=cookie) as res:
        token = json.load(res).get("token")
    if not token:
        raise RuntimeError("/api/auth/token: no token in the answer")
    return token


def create_org(base, cookie, n):
    body = {"name": f"Bench Org {n}", "slug": f"bench-org-{n}"}
    with call(base, "POST", "/api/auth/organization/create", body, cookie=cookie) as res:
        org_id = json.load(res).get("id")
    if not org_id:
        raise RuntimeError(f"organization/create {n}: no id in the answer")
    return org_id


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--refresh", action="store_true",
                    help="only fetch new JWTs for the sessions of an existing OUT_FILE")
    ap.add_argument("--jwts", help="write each user's JWT here")
    ap.add_argument("--orgs", help="create an organization per user; write `PATH JWT` lines here")
    ap.add_argument("args", nargs="+", metavar="BASE_URL [COUNT] OUT_FILE")
    opts = ap.parse_args()
    if len(opts.args) != (2 if opts.refresh else 3):
        ap.error("expected BASE_URL COUNT OUT_FILE, or --refresh BASE_URL OUT_FILE")
    base, out = opts.args[0].rstrip("/"), opts.args[-1]

    with ThreadPoolExecutor(PARALLEL) as pool:
        if opts.refresh:
            with open(out) as f:
                cookies = [line for line in f.read().splitlines() if line]
            if opts.orgs:
                with open(opts.orgs) as f:
                    paths = [line.split(" ", 1)[0] for line in f.read().splitlines() if line]
                if len(paths) != len(cookies):
                    sys.exit("sessions.py: the organization file does not match the cookie file")
        else:
            count = int(opts.args[1])
            cookies = list(pool.map(lambda n: sign_up(base, n), range(count)))
            if len(set(cookies)) != count:
                sys.exit("sessions.py: duplicate session cookies")
            write_lines(out, cookies)
            if opts.orgs:
                org_ids = list(pool.map(lambda n: create_org(base, cookies[n], n), range(count)))
                if len(set(org_ids)) != count:
                    sys.exit("sessions.py: duplicate organization ids")
                paths = [f"/orgs/{org_id}/items" for org_id in org_ids]
        if opts.jwts or opts.orgs:
            jwts = list(pool.map(lambda c: jwt(base, c), cookies))
            if len(set(jwts)) != len(cookies):
                sys.exit("sessions.py: duplicate JWTs")
            if opts.jwts:
                write_lines(opts.jwts, jwts)
            if opts.orgs:
                write_lines(opts.orgs, [f"{p} {t}" for p, t in zip(paths, jwts)])


if __name__ == "__main__":
    main()
