# bench/scale.sh's report. Rows (TSV): 1 sweep, 2 value, 3 mib, 4 vmas,
# 5 threads, 6 run, 7 phase, 8 seconds, 9 frozen_ms, 10 image_bytes,
# 11 rss_kib, 12 verdict, 13 memory bytes. Variables: mode (table|json),
# runs, storage, failures, vmas_mib, threads_mib, cryo.

function jstr(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
function jnum(v) { return v == "" || v == "-" ? "null" : v + 0 }

{
	k = $1 SUBSEP $2
	if (!(k in seen)) {
		seen[k] = 1
		order[++nk] = k
		if (!($1 in sweep_seen)) {
			sweep_seen[$1] = 1
			sweeps[++ns] = $1
		}
		npts[$1]++
		pt[$1, npts[$1]] = $2
		mib[k] = $3; vmas[k] = $4; threads[k] = $5
	}
	if ($12 != "ok" && $12 != "PASS")
		bad[k] = $12
	if ($8 == "" || $8 == "-")
		next
	n++
	for (i = 1; i <= 13; i++)
		R[n, i] = $i
	if ($7 == "checkpoint") {
		if (!(k in ck) || $8 < ck[k]) ck[k] = $8
		if (!(k in fr) || $9 < fr[k]) fr[k] = $9
		if ($11 > rssck[k]) rssck[k] = $11
		img[k] = $10
		mem[k] = $13
	} else if ($7 == "restore") {
		if (!(k in rs) || $8 < rs[k]) rs[k] = $8
		if ($11 > rssrs[k]) rssrs[k] = $11
	}
}

# per-unit scale and name of a sweep
function unit_div(s) { return s == "size" ? 1024 : 1 }	# MiB -> GiB
function unit_name(s) { return s == "size" ? "GiB" : s == "vmas" ? "VMA" : "thread" }
function unit_mult(s) { return s == "size" ? 1e3 : 1e6 }	# s -> ms, or s -> us
function unit_time(s) { return s == "size" ? "ms" : "us" }

# Cost per unit beyond the first point of the sweep: (y_i - y_1) / (x_i - x_1).
function slope(s, i, arr, scale,    a, b, dx) {
	if (i < 2)
		return "-"
	a = s SUBSEP pt[s, 1]; b = s SUBSEP pt[s, i]
	if (!(a in arr) || !(b in arr))
		return "-"
	dx = (pt[s, i] - pt[s, 1]) / unit_div(s)
	return sprintf("%.1f", (arr[b] - arr[a]) / dx * scale)
}

function print_table(    si, s, i, k, u) {
	for (si = 1; si <= ns; si++) {
		s = sweeps[si]
		u = unit_name(s)
		print ""
		if (s == "size")
			printf "scaling with memory size (%s, best of %d; 1 area, 1 thread)\n", storage, runs
		else if (s == "vmas")
			printf "scaling with the number of memory areas (%s, best of %d; %s MiB in all, 1 thread)\n", storage, runs, vmas_mib
		else
			printf "scaling with the number of threads (%s, best of %d; %s MiB, 1 area)\n", storage, runs, threads_mib
		printf "%7s %8s %9s %10s %8s %8s %7s %7s | %14s %14s %14s %14s\n", s == "size" ? "MiB" : s, "memMiB", "imageMiB",
			"frozen_ms", "ckpt_s", "rest_s", "rssCkMB", "rssRsMB",
			"ckpt " unit_time(s) "/" u, "rest " unit_time(s) "/" u, "image " (s == "size" ? "MiB" : "KiB") "/" u,
			"rssCk KiB/" u
		for (i = 1; i <= npts[s]; i++) {
			k = s SUBSEP pt[s, i]
			if (!(k in ck) || !(k in rs)) {
				printf "%7s  %s\n", pt[s, i], (k in bad) ? bad[k] : "no figure"
				continue
			}
			printf "%7s %8.1f %9.1f %10.1f %8.3f %8.3f %7.1f %7.1f | %14s %14s %14s %14s  %s\n", pt[s, i],
				mem[k] / 1048576, img[k] / 1048576, fr[k], ck[k], rs[k], rssck[k] / 1024, rssrs[k] / 1024,
				slope(s, i, ck, unit_mult(s)), slope(s, i, rs, unit_mult(s)),
				slope(s, i, img, s == "size" ? 1 / 1048576 : 1 / 1024), slope(s, i, rssck, 1),
				(k in bad) ? bad[k] : "PASS"
		}
	}
	print ""
	print "per-unit columns: (cost at the point - cost at the first point) / (units beyond the"
	print "first): about constant when the cost grows linearly. rssCkMB, rssRsMB: peak RSS of"
	print "cryo checkpoint and cryo restore."
}

function print_json(    i, k, f, first) {
	printf "{\"bench\": \"cryo-scale\", \"cryo\": %s, \"storage\": %s, \"runs_per_point\": %d, \"points\": [", jstr(cryo), jstr(storage), runs
	for (i = 1; i <= nk; i++) {
		k = order[i]
		split(k, f, SUBSEP)
		printf "%s{\"sweep\": %s, \"value\": %d, \"mib\": %d, \"vmas\": %d, \"threads\": %d, \"memory_bytes\": %s, \"image_bytes\": %s, \"frozen_ms\": %s, \"checkpoint_seconds\": %s, \"restore_seconds\": %s, \"checkpoint_rss_kib\": %s, \"restore_rss_kib\": %s, \"check\": %s}",
			(i > 1 ? ", " : ""), jstr(f[1]), f[2], mib[k], vmas[k], threads[k], jnum(mem[k]), jnum(img[k]), jnum(fr[k]),
			jnum(ck[k]), jnum(rs[k]), jnum(rssck[k]), jnum(rssrs[k]), jstr((k in bad) ? bad[k] : "PASS")
	}
	printf "], \"runs\": ["
	for (i = 1; i <= n; i++)
		printf "%s{\"sweep\": %s, \"value\": %d, \"run\": %d, \"phase\": %s, \"seconds\": %s, \"frozen_ms\": %s, \"image_bytes\": %s, \"rss_kib\": %s, \"check\": %s}",
			(i > 1 ? ", " : ""), jstr(R[i, 1]), R[i, 2], R[i, 6], jstr(R[i, 7]), jnum(R[i, 8]), jnum(R[i, 9]),
			jnum(R[i, 10]), jnum(R[i, 11]), jstr(R[i, 12])
	printf "], \"failures\": %d}\n", failures
}

END {
	if (mode == "json")
		print_json()
	else
		print_table()
}
