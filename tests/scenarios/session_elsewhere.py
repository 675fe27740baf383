# A tree restore could not recreate (tests/scenarios.sh): main, a child
# subreaper, forks Q, which starts a session and stays; Q forks M, M forks
# R and exits, so R (session Q) is reparented to main (another session)
# while its session leader Q is alive elsewhere in the tree. Writes Q's
# PID to argv[1] once R is reparented; then idles.
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
q = os.fork()
if q == 0:
    os.setsid()              # Q leads session Q and stays alive
    m = os.fork()
    if m == 0:
        r = os.fork()
        if r == 0:
            while True: time.sleep(1)   # R: session Q, reparented to the subreaper
        os._exit(0)
    os.waitpid(m, 0)
    while True: time.sleep(1)
time.sleep(0.3)  # M has exited, R is ours
open(sys.argv[1], "w").write("%d\n" % q)
while True:
    time.sleep(1)
