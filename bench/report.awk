# bench/run.sh's report: reads the rows it measured (TSV, one per
# measurement) and the bounds (KEY=VALUE lines of `bounds --vars`), prints
# the bounds (mode=bounds), the table and the targets (mode=table) or one
# JSON document (mode=json). Variables: mode, runs, sync, warm, failures, cryo, date,
# bounds_file, bounds_mib.
#
# Row fields: 1 mib, 2 pattern, 3 storage, 4 codec, 5 run, 6 phase,
# 7 seconds, 8 frozen_ms, 9 image_bytes, 10 present_bytes, 11 rss_kib,
# 12 hwm_extra_kib, 13 verdict ("-": not applicable).

function num(v) { return v != "" && v != "-" }
function max2(a, b) { return a > b ? a : b }
function gb(k) { return (k in B && B[k] != "") ? B[k] * 1e9 : 0 }

# Seconds the machine needs at least for the measurement of row r, or 0 if
# a bound it needs is missing.
function bound_s(r,    st, P, I, c, w, rd, b) {
	st = R[r, 3]; P = R[r, 10]; I = R[r, 9]; c = R[r, 4]
	if (!num(P) || !num(I))
		return 0
	if (R[r, 6] == "checkpoint") {
		w = gb(st (sync ? "_write_fsync_gbps" : "_write_gbps"))
		if (!w || !gb("pvr_gbps"))
			return 0
		b = max2(P / gb("pvr_gbps"), I / w)
		if (c != "none") {
			if (!gb(c "_compress_gbps"))
				return 0
			b = max2(b, P / gb(c "_compress_gbps"))
		}
		return b
	}
	if (c == "none") {
		if (R[r, 6] == "restore-cold")
			rd = max2(gb(st "_read_direct_fresh_gbps"), gb(st "_read_cold_fresh_gbps"))
		else
			rd = gb(st "_read_fresh_gbps")
		return rd ? I / rd : 0
	}
	if (R[r, 6] == "restore-cold")
		rd = max2(gb(st "_read_direct_gbps"), gb(st "_read_cold_fresh_gbps"))
	else
		rd = gb(st "_read_cached_gbps")
	if (!rd || !gb(c "_decompress_gbps") || !gb(st "_read_fresh_gbps"))
		return 0
	# the P bytes land in fresh memory too, as an uncompressed restore's do
	return max2(max2(I / rd, P / gb(c "_decompress_gbps")), P / gb(st "_read_fresh_gbps"))
}

# frozen time / time to write the present memory to the storage
function frozen_ratio(r,    w) {
	w = gb(R[r, 3] (sync ? "_write_fsync_gbps" : "_write_gbps"))
	if (!w || !num(R[r, 8]) || !R[r, 10])
		return -1
	return R[r, 8] / 1e3 / (R[r, 10] / w)
}

function fmt(v, f) { return v < 0 || v == "" ? "n/a" : sprintf(f, v) }
function jnum(v) { return v == "" || v == "-" || v < 0 ? "null" : v + 0 }
function jstr(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }

BEGIN {
	while ((getline line < bounds_file) > 0) {
		k = substr(line, 1, index(line, "=") - 1)
		B[k] = substr(line, index(line, "=") + 1)
		bkeys[++nb] = k
	}
	if (mode == "bounds") {
		printf "  %-44s %8s GB/s\n", "memcpy", fmt(B["memcpy_gbps"], "%.2f")
		printf "  %-44s %8s GB/s\n", "process_vm_readv (8 MiB calls)", fmt(B["pvr_gbps"], "%.2f")
		split("tmpfs disk slow", sts, " ")
		split("write_gbps write_fsync_gbps write_direct_gbps read_cached_gbps read_fresh_gbps read_direct_gbps read_direct_fresh_gbps read_cold_fresh_gbps", ios, " ")
		split("write (page cache)|write+fsync|write O_DIRECT|read (page cache)|read into fresh memory|read O_DIRECT|read O_DIRECT into fresh memory|read cold into fresh memory", iot, "|")
		for (s = 1; s <= 3; s++) {
			if (!((sts[s] "_write_gbps") in B))
				continue
			for (i = 1; i <= 8; i++)
				printf "  %-44s %8s GB/s\n", sts[s] " " iot[i], fmt(B[sts[s] "_" ios[i]], "%.2f")
		}
		split("zstd lz4", cs, " ")
		for (i = 1; i <= 2; i++) {
			if (B[cs[i] "_ratio"] == "")
				continue
			printf "  %-44s %8s GB/s\n", cs[i] " compress (text, a thread per CPU)", fmt(B[cs[i] "_compress_gbps"], "%.2f")
			printf "  %-44s %8s GB/s\n", cs[i] " decompress (a thread per CPU)", fmt(B[cs[i] "_decompress_gbps"], "%.2f")
			printf "  %-44s %8s : 1\n", cs[i] " ratio", fmt(B[cs[i] "_ratio"], "%.2f")
		}
		exit
	}
}

{
	n++
	for (i = 1; i <= 13; i++)
		R[n, i] = $i
	key = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4
	if (!(key in seen)) {
		seen[key] = 1
		order[++nk] = key
	}
	ph = $6
	if ($13 != "ok" && $13 != "PASS" && $13 != "-")
		bad[key] = $13
	if (!num($7))
		next
	b = bound_s(n)
	ratio[n] = b > 0.01 ? b / $7 : -1	# no ratio for work too small to bound
	if (!((key, ph) in best) || $7 < R[best[key, ph], 7])
		best[key, ph] = n
	if (!((key, ph) in worst) || $7 > R[worst[key, ph], 7])
		worst[key, ph] = n
	if ($11 + 0 > rss[key, ph])
		rss[key, ph] = $11 + 0
	if (ph != "checkpoint" && (!((key, "extra") in rss) || $12 + 0 > rss[key, "extra"]))
		rss[key, "extra"] = $12 + 0
	if (ph == "checkpoint" && (!((key, "frozen") in best) || $8 < R[best[key, "frozen"], 8]))
		best[key, "frozen"] = n
	if (ph == "checkpoint")
		maxrss_ck = max2(maxrss_ck, $11)
	else
		maxrss_rs = max2(maxrss_rs, $11)
}

function cell_time(key, ph,    r) {
	if (!((key, ph) in best))
		return sprintf(" %7s %5s", "-", "")
	r = best[key, ph]
	return sprintf(" %7.3f %5s", R[r, 7], fmt(ratio[r], "%.2f"))
}

function print_table(    i, k, f, r, fr, ck) {
	print ""
	printf "results (best of %d run%s%s; x = bound time / measured time, 1.00 = the machine's speed)\n", runs, (runs > 1 ? "s" : ""), warm ? "" : ", no warm-up"
	printf "%5s %-6s %-5s %-7s %8s %9s %5s %8s %5s %8s %5s %8s %5s %7s %7s %7s  %s\n",
		"MiB", "data", "store", "zip", "imageMiB", "frozen_ms", "/wr",
		"ckpt_s", "x", "rest_s", "x", "cold_s", "x", "rssCkMB", "rssRsMB", "+rssMB", "check"
	for (i = 1; i <= nk; i++) {
		k = order[i]
		split(k, f, SUBSEP)
		if (!((k, "checkpoint") in best)) {
			printf "%5s %-6s %-5s %-7s  %s\n", f[1], f[2], f[3], f[4], (k in bad) ? bad[k] : "no figure"
			continue
		}
		ck = best[k, "checkpoint"]
		fr = best[k, "frozen"]
		printf "%5s %-6s %-5s %-7s %8.1f %9.1f %5s%s%s%s %7.1f %7.1f %7.1f  %s\n",
			f[1], f[2], f[3], f[4], R[ck, 9] / 1048576, R[fr, 8], fmt(frozen_ratio(fr), "%.2f"),
			cell_time(k, "checkpoint"), cell_time(k, "restore"), cell_time(k, "restore-cold"),
			rss[k, "checkpoint"] / 1024, max2(rss[k, "restore"], rss[k, "restore-cold"]) / 1024,
			rss[k, "extra"] / 1024, (k in bad) ? bad[k] : "PASS"
	}
	printf "columns: imageMiB image size; frozen_ms how long the target was stopped (/wr: divided by\n"
	printf "the time to write its present memory to that storage); ckpt_s checkpoint, rest_s restore\n"
	printf "(page cache), cold_s restore with the image dropped from the page cache first; x their\n"
	printf "ratio to the bound; rssCkMB, rssRsMB peak RSS of cryo checkpoint, cryo restore (MiB);\n"
	printf "+rssMB the restored process's peak RSS beyond the original's; check memhog's own check.\n"
}

# Targets of the issue "checkpoint and restore at the speed of the machine".
function target(name, met, text) {
	nt++
	T[nt, "name"] = name; T[nt, "met"] = met; T[nt, "text"] = text
}

function key_of(mib, pat, st, c) { return mib SUBSEP pat SUBSEP st SUBSEP c }

function eval_targets(    k, r, w, rd, mib, pats, p, i, P, I, over, s, m, any, t) {
	k = key_of(1024, "random", "tmpfs", "none")
	w = gb(sync ? "tmpfs_write_fsync_gbps" : "tmpfs_write_gbps")
	if ((k, "checkpoint") in best && w) {
		r = best[k, "checkpoint"]
		target("checkpoint 1 GiB random to tmpfs >= 0.8 x tmpfs write bound", R[r, 9] / R[r, 7] / w >= 0.8 ? "met" : "NOT met",
			sprintf("%.2f GB/s = %.2f x %s (%.2f GB/s)", R[r, 9] / R[r, 7] / 1e9, R[r, 9] / R[r, 7] / w,
				sync ? "write+fsync" : "write", w / 1e9))
	} else
		target("checkpoint 1 GiB random to tmpfs >= 0.8 x tmpfs write bound", "not measured", "")
	rd = gb("tmpfs_read_fresh_gbps")
	if ((k, "restore") in best && rd) {
		r = best[k, "restore"]
		target("restore 1 GiB random from tmpfs >= 0.8 x read bound", R[r, 9] / R[r, 7] / rd >= 0.8 ? "met" : "NOT met",
			sprintf("%.2f GB/s = %.2f x read into fresh memory (%.2f GB/s); %.2f x read into faulted-in memory (%.2f GB/s)",
				R[r, 9] / R[r, 7] / 1e9, R[r, 9] / R[r, 7] / rd, rd / 1e9,
				R[r, 9] / R[r, 7] / gb("tmpfs_read_cached_gbps"), gb("tmpfs_read_cached_gbps") / 1e9))
	} else
		target("restore 1 GiB random from tmpfs >= 0.8 x read bound", "not measured", "")

	# untouched and all-zero pages cost no image space: image beyond the
	# nonzero data at most 1% of the memory size
	s = ""; m = "met"; any = 0
	for (i = 1; i <= nk; i++) {
		split(order[i], p, SUBSEP)
		if ((p[2] != "zero" && p[2] != "sparse") || p[4] != "none" || !((order[i], "checkpoint") in best))
			continue
		r = best[order[i], "checkpoint"]
		I = R[r, 9]
		P = p[2] == "zero" ? 0 : R[r, 10]
		over = I - P
		any = 1
		if (over > 0.01 * p[1] * 1048576)
			m = "NOT met"
		s = s sprintf("%s%s MiB %s -> %s: image %.1f MiB, %.1f MiB beyond the nonzero data", s == "" ? "" : "; ",
			p[1], p[2], p[3], I / 1048576, over / 1048576)
	}
	target("untouched and all-zero pages cost no image space", any ? m : "not measured", s)

	if (maxrss_ck || maxrss_rs) {
		target("cryo's peak RSS <= 64 MiB whatever the target size", maxrss_ck <= 65536 && maxrss_rs <= 65536 ? "met" : "NOT met",
			sprintf("checkpoint %.1f MiB, restore %.1f MiB at most (largest target %s MiB)", maxrss_ck / 1024, maxrss_rs / 1024, maxmib))
	} else
		target("cryo's peak RSS <= 64 MiB whatever the target size", "not measured", "")

	k = key_of(4096, "random", "tmpfs", "none")
	w = gb(sync ? "tmpfs_write_fsync_gbps" : "tmpfs_write_gbps")
	if ((k, "frozen") in best && w) {
		r = best[k, "frozen"]
		t = 4096 * 1048576 / w
		target("freeze time for 4 GiB to tmpfs <= time to write 4 GiB there", R[r, 8] / 1e3 <= t ? "met" : "NOT met",
			sprintf("frozen %.0f ms, writing 4 GiB takes %.0f ms (%.2f x)", R[r, 8], t * 1e3, R[r, 8] / 1e3 / t))
	} else
		target("freeze time for 4 GiB to tmpfs <= time to write 4 GiB there", "not measured", "")
}

function print_targets(    i) {
	print ""
	print "targets (reported, never enforced)"
	for (i = 1; i <= nt; i++)
		printf "  %-8s %s%s\n", T[i, "met"] ":", T[i, "name"], T[i, "text"] == "" ? "" : "\n           " T[i, "text"]
}

function print_json(    i, r, k, f, ph, phs, j, first) {
	printf "{\"bench\": \"cryo\", \"cryo\": %s, \"date\": %s, \"runs_per_workload\": %d, \"fsync\": %s, \"warm\": %s, \"bounds_file_mib\": %d, \"bounds\": {", jstr(cryo), jstr(date), runs, sync ? "true" : "false", warm ? "true" : "false", bounds_mib
	for (i = 1; i <= nb; i++)
		printf "%s%s: %s", (i > 1 ? ", " : ""), jstr(bkeys[i]), jnum(B[bkeys[i]])
	printf "}, \"runs\": ["
	for (r = 1; r <= n; r++) {
		printf "%s{\"mib\": %d, \"pattern\": %s, \"storage\": %s, \"codec\": %s, \"run\": %d, \"phase\": %s, \"seconds\": %s, \"frozen_ms\": %s, \"image_bytes\": %s, \"present_bytes\": %s, \"rss_kib\": %s, \"restored_extra_hwm_kib\": %s, \"bound_seconds\": %s, \"ratio\": %s, \"check\": %s}",
			(r > 1 ? ", " : ""), R[r, 1], jstr(R[r, 2]), jstr(R[r, 3]), jstr(R[r, 4]), R[r, 5], jstr(R[r, 6]),
			jnum(R[r, 7]), jnum(R[r, 8]), jnum(R[r, 9]), jnum(R[r, 10]), jnum(R[r, 11]), jnum(R[r, 12]),
			num(R[r, 7]) ? jnum(bound_s(r)) : "null", num(R[r, 7]) ? jnum(ratio[r]) : "null", jstr(R[r, 13])
	}
	printf "], \"summary\": ["
	split("checkpoint restore restore-cold", phs, " ")
	first = 1
	for (i = 1; i <= nk; i++) {
		k = order[i]
		split(k, f, SUBSEP)
		for (j = 1; j <= 3; j++) {
			ph = phs[j]
			if (!((k, ph) in best))
				continue
			r = best[k, ph]
			printf "%s{\"mib\": %d, \"pattern\": %s, \"storage\": %s, \"codec\": %s, \"phase\": %s, \"best_seconds\": %s, \"worst_seconds\": %s, \"ratio\": %s, \"image_bytes\": %s, \"frozen_ms\": %s, \"frozen_over_write\": %s, \"peak_rss_kib\": %s, \"restored_extra_hwm_kib\": %s, \"check\": %s}",
				first ? "" : ", ", f[1], jstr(f[2]), jstr(f[3]), jstr(f[4]), jstr(ph), R[r, 7] + 0, R[worst[k, ph], 7] + 0,
				jnum(ratio[r]), jnum(R[r, 9]), ph == "checkpoint" ? jnum(R[best[k, "frozen"], 8]) : "null",
				ph == "checkpoint" ? jnum(frozen_ratio(best[k, "frozen"])) : "null",
				rss[k, ph], ph == "checkpoint" ? "null" : rss[k, "extra"], jstr((k in bad) ? bad[k] : "PASS")
			first = 0
		}
	}
	printf "], \"targets\": ["
	for (i = 1; i <= nt; i++)
		printf "%s{\"target\": %s, \"status\": %s, \"detail\": %s}", (i > 1 ? ", " : ""), jstr(T[i, "name"]), jstr(T[i, "met"]), jstr(T[i, "text"])
	printf "], \"failures\": %d}\n", failures
}

END {
	if (mode == "bounds")
		exit
	for (i = 1; i <= n; i++)
		if (R[i, 1] + 0 > maxmib)
			maxmib = R[i, 1] + 0
	eval_targets()
	if (mode == "json")
		print_json()
	else {
		print_table()
		print_targets()
	}
}
