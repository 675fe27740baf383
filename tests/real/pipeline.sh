# shellcheck shell=bash
# Real program: an unmodified bash pipeline, loop | cat | grep, appending 1,
# 2, 3... to $TEST_DIR/seq: four processes (and a sleep forked at each step)
# connected by two pipes that may hold lines in flight at the checkpoint.
# After the restore the numbers must go on through the pipes: no gap, no
# repetition, no restart. Sourced by tests/run.sh ("real-program hooks").

real_test pipeline

pipeline_start() {
	# shellcheck disable=SC2016
	real_exec bash -c 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done | cat |
		grep --line-buffered "^[0-9]" >> "$TEST_DIR/seq"'
}
pipeline_ready() { [ "$(real_log_lines seq)" -ge 3 ]; }
pipeline_count() { real_log_lines seq; }
pipeline_verify() { real_check_steps "$TEST_DIR/seq"; }
