#!/usr/bin/env python3
"""The systematic corruption walk of tests/robust.sh.

    walk.py --cryo CRYO --image IMG --label LABEL --work DIR --test-dir DIR
            [--seed N] [--max N] [--budget SECONDS] [--timeout SECONDS]

For every variant of IMG (tests/robust/image.py: bit flips, truncations,
structural fields and table values rewritten with CRCs recomputed) it runs
`CRYO inspect VARIANT` and `CRYO restore VARIANT --detach` and checks:

  - the exit status is a documented one; never a crash (signal), a timeout,
    70 (internal error) or an undocumented code;
  - flip, trunc, struct: both exit 65; semantic: restore exits 65 (or a
    code the variant names as right, e.g. 69 for CPU features this machine
    lacks; other documented failure codes are reported as notes), inspect
    exits 0 or 65;
  - a failure message on stderr names the image (its file name);
  - no sanitizer report on stderr (AddressSanitizer, LeakSanitizer,
    UndefinedBehaviorSanitizer "runtime error:");
  - no process is left: every PID and TID of the image (and any PID the
    variant wrote into it) is free again within 5 s, and no process carries
    the walk's tag (CRYO_ROBUST_TAG, in the environment of the cryo commands
    and everything they fork) or TEST_DIR=<test dir> (the restored program's
    environment).

Output: one line per variant class, "ok - LABEL: CLASS: ..." or "not ok -
LABEL: CLASS: ..." with the wrong variants listed below it (indented), and
"# note:" lines for documented codes other than 65. The last line is
"# counts PASS FAIL SKIP". Variants are written one at a time, each under its
own name (so that the message check means something), and removed.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import image as imglib  # noqa: E402

DOCUMENTED = {0, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74}
SAN_RE = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
                    r"runtime error:|==\d+==ERROR")
CLASSES = ("flip", "trunc", "struct", "semantic")


def now():
    return time.monotonic()


def become_subreaper():
    """Orphans of failed restores come to us, not to PID 1 (which reaps
    them up to 2 s late here), so that their PIDs are free at once."""
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG | getattr(os, "__WALL", 0x40000000))
        except ChildProcessError:
            return
        if pid == 0:
            return


def environ_of(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            return f.read()
    except OSError:
        return None


def state_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return s[s.rindex(")") + 2]
    except (OSError, ValueError):
        return None


def comm_of(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


class Walker:
    def __init__(self, a):
        self.a = a
        self.tag = "CRYO_ROBUST_TAG=%s" % a.tag
        self.markers = [self.tag.encode() + b"\0", ("TEST_DIR=%s" % a.test_dir).encode() + b"\0"]
        self.env = dict(os.environ)
        self.env["CRYO_ROBUST_TAG"] = a.tag
        self.env.pop("CRYO_FAULT", None)
        self.me = {os.getpid(), os.getppid()}
        self.pid_max = imglib.pid_max()

    def ours(self, pid):
        """Is pid one of the processes this walk (or the image) made?"""
        env = environ_of(pid)
        if env is None:
            return False
        env = b"\0" + env
        return any(b"\0" + m in env for m in self.markers)

    def tagged(self):
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            pid = int(d)
            if pid in self.me:
                continue
            if self.ours(pid):
                out.append(pid)
        return out

    def run(self, args):
        t0 = now()
        for attempt in range(50):
            try:
                p = subprocess.run([self.a.cryo] + args, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=self.env, timeout=self.a.timeout, cwd=self.a.work)
                rc = p.returncode
                out, err = p.stdout, p.stderr
                break
            except subprocess.TimeoutExpired as e:
                rc, out, err = "timeout", e.stdout or b"", e.stderr or b""
                break
            except OSError as e:
                # the binary is being rebuilt (make in another shell): wait
                rc, out, err = "exec", b"", str(e).encode()
                time.sleep(0.2)
        return rc, out.decode(errors="replace"), err.decode(errors="replace"), now() - t0

    def kill_ours(self, pids):
        for p in pids:
            if self.ours(p) or state_of(p) in ("Z", "X"):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass

    def wait_free(self, pids, timeout):
        """Wait until none of pids exists; return those that remain."""
        end = now() + timeout
        while True:
            reap()
            left = [p for p in pids if os.path.exists("/proc/%d" % p)]
            if not left or now() >= end:
                return left
            time.sleep(0.05)

    def check_variant(self, v, data, img_pids):
        """Run one variant; return (problems, notes): problems are strings,
        notes (kind, example message) pairs, aggregated by kind."""
        problems, notes = [], []
        path = os.path.join(self.a.work, "%s.%s.img" % (self.a.label, v.name))
        with open(path, "wb") as f:
            f.write(v.make(bytearray(data)))
        base = os.path.basename(path)
        extra = [p for p in v.extra_pids if 0 < p < self.pid_max]
        watch = sorted(set(img_pids) | set(extra))
        strict = v.cls in ("flip", "trunc", "struct")

        for cmd in ("inspect", "restore"):
            args = [cmd, path] + (["--detach"] if cmd == "restore" else [])
            rc, out, err, dt = self.run(args)
            where = "%s: exit %s" % (cmd, rc)
            if SAN_RE.search(err):
                line = next((l for l in err.splitlines() if SAN_RE.search(l)), "")
                problems.append("%s: sanitizer report: %s" % (where, line.strip()[:200]))
            if rc == "exec":
                problems.append("%s: cannot run %s: %s" % (where, self.a.cryo, err))
            elif rc == "timeout":
                problems.append("%s: timed out after %ds" % (where, self.a.timeout))
            elif rc < 0 or rc >= 128:
                sig = -rc if rc < 0 else rc - 128
                problems.append("%s: crashed (signal %d)" % (where, sig))
            elif rc not in DOCUMENTED:
                problems.append("%s: not a documented exit code" % where)
            elif rc == 70:
                problems.append("%s: internal error for a bad image: %s" % (
                    where, err.strip().splitlines()[0][:200] if err.strip() else "(no message)"))
            elif rc == 0 and 0 in v.accept:
                if cmd == "restore":
                    notes.append(("restore exit 0 (accepted)", "restored as %s" %
                                  out.strip()[:40]))
            elif rc == 0:
                if cmd == "restore":
                    problems.append("restore: exit 0: the corrupted image was restored (as %s)" %
                                    out.strip()[:40])
                elif strict:
                    problems.append("inspect: exit 0: the corruption was not noticed")
            elif rc != 65:
                ok_alt = cmd == "restore" and rc in v.accept
                msg = err.strip().splitlines()[0][:200] if err.strip() else "(no message)"
                if strict or cmd == "inspect":
                    problems.append("%s, want 65: %s" % (where, msg))
                elif not ok_alt:
                    notes.append(("%s exit %d instead of 65" % (cmd, rc), msg))
            already = any(x.startswith(where) for x in problems)
            if rc not in (0, "timeout") and isinstance(rc, int) and 0 < rc < 128 and not already:
                if not err.strip():
                    problems.append("%s: no message on stderr" % where)
                elif base not in err:
                    first = err.strip().splitlines()[0][:200]
                    if rc == 65:
                        problems.append("%s: the message does not name the image: %s" % (
                            where, first))
                    elif notes and notes[-1][0].startswith("%s exit %d " % (cmd, rc)):
                        notes[-1] = (notes[-1][0] + ", message without the image name",
                                     notes[-1][1])
                    else:
                        notes.append(("%s exit %d, message without the image name" % (cmd, rc),
                                      first))
            if cmd == "restore":
                # the image's PIDs: free at once after a refusal, or within
                # 5 s (PID 1 reaps late) after a failure that created tasks
                if rc == 0:
                    self.kill_ours(watch)
                    self.wait_free([p for p in watch if self.ours(p) or
                                    state_of(p) in ("Z", "X")], 10)
                reap()
                at_once = [p for p in watch if os.path.exists("/proc/%d" % p)]
                left = self.wait_free(at_once, 5) if at_once else []
                foreign = [p for p in left if not self.ours(p) and state_of(p) not in ("Z", "X")]
                mine = [p for p in left if p not in foreign]
                if mine:
                    problems.append("after restore (exit %s): image PIDs still there 5 s later: %s"
                                    % (rc, " ".join("%d(%s,%s)" % (p, comm_of(p), state_of(p))
                                                    for p in mine)))
                    self.kill_ours(mine)
                    self.wait_free(mine, 5)
                if foreign:
                    notes.append(("image PIDs used by other processes (check inconclusive)",
                                  "%s: %s" % (foreign, " ".join(comm_of(p) for p in foreign))))
                stray = self.tagged()
                if stray:
                    time.sleep(0.2)
                    stray = [p for p in self.tagged() if p in stray]
                if stray:
                    problems.append("after restore (exit %s): processes left: %s" % (
                        rc, " ".join("%d(%s,%s)" % (p, comm_of(p), state_of(p)) for p in stray)))
                    self.kill_ours(stray)
                    self.wait_free(stray, 5)
        try:
            os.unlink(path)
        except OSError:
            pass
        return problems, notes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cryo", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--test-dir", required=True)
    ap.add_argument("--tag", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max", type=int, default=None)
    ap.add_argument("--budget", type=float, default=None,
                    help="stop starting variants after this many seconds")
    ap.add_argument("--timeout", type=int, default=5)
    ap.add_argument("--show", type=int, default=12, help="wrong variants listed per class")
    ap.add_argument("--only", default=None, help="regex: run only the variants it matches")
    a = ap.parse_args()
    a.tag = a.tag or "%s.%d" % (a.work, os.getpid())
    a.cryo, a.work = os.path.abspath(a.cryo), os.path.abspath(a.work)

    with open(a.image, "rb") as f:
        data = f.read()
    img = imglib.Image(data)
    pids = img.pids()
    variants = imglib.all_variants(img, a.seed, a.max)
    if a.only:
        variants = [v for v in variants if re.search(a.only, v.name)]
    w = Walker(a)
    become_subreaper()
    # spread the walk over the classes, in a fixed interleaved order, so
    # that a time budget cuts every class evenly
    by_cls = {c: [v for v in variants if v.cls == c] for c in CLASSES}
    order = []
    i = 0
    while any(i < len(l) for l in by_cls.values()):
        for c in CLASSES:
            if i < len(by_cls[c]):
                order.append(by_cls[c][i])
        i += 1

    busy = [p for p in pids if os.path.exists("/proc/%d" % p)]
    if busy:
        print("skip - %s: the image's PIDs %s are in use, the walk cannot tell what a restore "
              "leaves" % (a.label, busy))
        print("# counts 0 0 1")
        return 0

    t0 = now()
    res = {c: {"n": 0, "bad": [], "notes": []} for c in CLASSES}
    cut = 0
    for v in order:
        if a.budget and now() - t0 > a.budget:
            cut += 1
            continue
        problems, notes = w.check_variant(v, data, pids)
        r = res[v.cls]
        r["n"] += 1
        if problems:
            r["bad"].append((v, problems))
        if notes:
            r["notes"].append((v, notes))
    dt = now() - t0

    npass = nfail = 0
    for c in CLASSES:
        r = res[c]
        if not r["n"]:
            continue
        want = "restore refuses it (65)" if c == "semantic" else "inspect and restore exit 65"
        if r["bad"]:
            nfail += 1
            print("not ok - %s: %s: %d of %d variants wrong (want: %s, nothing left)" % (
                a.label, c, len(r["bad"]), r["n"], want))
            for v, probs in r["bad"][:a.show]:
                print("    %s [%s]" % (v.name, v.what))
                for p in probs[:4]:
                    print("        %s" % p)
            if len(r["bad"]) > a.show:
                print("    ... and %d more" % (len(r["bad"]) - a.show))
        else:
            npass += 1
            print("ok - %s: %s: %d variants, %s, nothing left" % (a.label, c, r["n"], want))
        kinds = {}
        for v, ns in r["notes"]:
            for kind, msg in ns:
                kinds.setdefault(kind, []).append((v, msg))
        for kind, lst in kinds.items():
            names = ", ".join(v.name for v, _ in lst[:a.show])
            more = " and %d more" % (len(lst) - a.show) if len(lst) > a.show else ""
            print("# note: %s: %s: %s: %d variant(s): %s%s" % (a.label, c, kind, len(lst), names,
                                                             more))
            seen = set()
            for v, msg in lst:
                short = re.sub(r"[0-9a-f]{6,}|\d+", "N", msg)
                if short in seen or len(seen) >= 3:
                    continue
                seen.add(short)
                print("#     e.g. %s [%s]: %s" % (v.name, v.what, msg))
    print("# %s: %d variants in %.1fs%s" % (a.label, sum(r["n"] for r in res.values()), dt,
                                           ", %d not run (time budget)" % cut if cut else ""))
    print("# counts %d %d 0" % (npass, nfail))
    return 0


if __name__ == "__main__":
    sys.exit(main())
