# shellcheck shell=bash
# Real program: an unmodified bash appending 1, 2, 3... to $TEST_DIR/seq,
# one line every 0.2 s, forking a sleep(1) each time (so a checkpoint
# usually catches a parent in wait4 and a child in nanosleep). After the
# restore the numbers must go on: no gap, no repetition, no restart.
# Sourced by tests/run.sh (see "real-program hooks" there).

real_test bash_loop

bash_loop_start() {
	# shellcheck disable=SC2016
	real_exec bash -c 'i=0; while :; do i=$((i+1)); echo $i >> "$TEST_DIR/seq"; sleep 0.2; done'
}
bash_loop_ready() { [ "$(real_log_lines seq)" -ge 3 ]; }
bash_loop_count() { real_log_lines seq; }
bash_loop_verify() { real_check_steps "$TEST_DIR/seq"; }
