# shellcheck shell=bash
# Real program: python3 running tests/real/python_compute.py, which holds a
# large dict and extends a SHA-256 chain, one "step digest" line every 0.1 s
# to $TEST_DIR/chain (through one file object kept open). After the restore
# the steps must go on, and the verifier recomputes the chain from scratch
# to check every line. Sourced by tests/run.sh.

real_test python_compute

python_compute_start() {
	real_exec "$PYTHON" "$TESTS_DIR/real/python_compute.py" run chain
}
python_compute_ready() { [ "$(real_log_lines chain)" -ge 5 ]; }
python_compute_count() { real_log_lines chain; }
python_compute_verify() {
	real_check_steps "$TEST_DIR/chain" || return 1
	"$PYTHON" "$TESTS_DIR/real/python_compute.py" verify "$TEST_DIR/chain"
}
