#!/usr/bin/env python3
"""A stateful computation for cryo's real-program test (tests/real/python_compute.sh).

    python_compute.py run LOG      compute forever, appending "step digest" lines to LOG
    python_compute.py verify LOG   recompute the chain, check every line of LOG

State held in memory: a dict of TABLE_SIZE 32-byte values (tens of MB),
the current digest and the step number. Step n:

    k = n % TABLE_SIZE
    digest = sha256(digest || table[k] || n)
    table[k] = sha256(table[k] || digest)

so each step depends on everything before it, memory included: a restored
process with a single wrong byte of the dict, or a lost or repeated step,
produces digests the verifier does not. The log is one file object opened
once, flushed after every line; one step every 0.1 s.
"""
import hashlib
import sys
import time

TABLE_SIZE = 150_000
SEED = b"cryo python_compute"


def initial_table():
    return {i: hashlib.sha256(b"%d" % i).digest() for i in range(TABLE_SIZE)}


def advance(table, digest, n):
    k = n % TABLE_SIZE
    digest = hashlib.sha256(digest + table[k] + n.to_bytes(8, "little")).digest()
    table[k] = hashlib.sha256(table[k] + digest).digest()
    return digest


def run(path):
    table = initial_table()
    digest = hashlib.sha256(SEED).digest()
    n = 0
    with open(path, "a", buffering=1) as log:
        while True:
            n += 1
            digest = advance(table, digest, n)
            log.write("%d %s\n" % (n, digest.hex()))
            log.flush()
            time.sleep(0.1)


def verify(path):
    """Every line must be "n digest" with the digest of step n.

    The order of steps is checked by the runner (real_check_steps), which
    knows where the checkpoints were; here each line is checked against the
    recomputed chain."""
    with open(path) as f:
        lines = f.read().splitlines()
    steps = []
    for i, line in enumerate(lines, 1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            print("FAIL: %s line %d: malformed: %r" % (path, i, line))
            return 1
        steps.append((i, int(parts[0]), parts[1]))
    if not steps:
        print("FAIL: %s is empty" % path)
        return 1
    last = max(n for _, n, _ in steps)
    table = initial_table()
    digest = hashlib.sha256(SEED).digest()
    chain = [None]
    for n in range(1, last + 1):
        digest = advance(table, digest, n)
        chain.append(digest.hex())
    for i, n, d in steps:
        if n < 1 or chain[n] != d:
            print("FAIL: %s line %d: step %d has digest %s, expected %s" % (path, i, n, d[:16], chain[n][:16] if n >= 1 else "-"))
            return 1
    print("PASS: %d lines, %d steps" % (len(steps), last))
    return 0


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("run", "verify"):
        print(__doc__, file=sys.stderr)
        return 64
    if sys.argv[1] == "run":
        run(sys.argv[2])
        return 0
    return verify(sys.argv[2])


if __name__ == "__main__":
    sys.exit(main())
