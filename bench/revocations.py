#!/usr/bin/env python3
"""Redis protocol that fills a revocation stream, for `redis-cli --pipe`.

    revocations.py KEY COUNT | redis-cli -u URL --pipe

Half the entries revoke a subject, half a token id; none matches a
benchmark token. Each expires in an hour, and so does the key.
"""

import sys
import time


def command(*args):
    parts = [f"*{len(args)}\r\n"]
    for arg in args:
        data = str(arg).encode()
        parts.append(f"${len(data)}\r\n")
        parts.append(data.decode() + "\r\n")
    return "".join(parts)


def main():
    key, count = sys.argv[1], int(sys.argv[2])
    now = int(time.time())
    out = sys.stdout
    for i in range(count):
        kind = "jti" if i % 2 else "sub"
        out.write(command("XADD", key, "*", "kind", kind, "value", f"bench-revoked-{i}",
                          "at", now, "expires", now + 3600))
    out.write(command("PEXPIRE", key, 3_700_000))


if __name__ == "__main__":
    main()
