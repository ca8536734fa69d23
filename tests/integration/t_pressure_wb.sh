#!/bin/bash
# t_pressure_wb: swap under memory pressure with a backing file and a
# mem_limit low enough that writeback and spilling run during the
# pressure: the test of "no deadlock in the swap path".  A 2G image with
# mem_limit=48M, a backing file on the test's disk and writeback_age=2 is
# swap (a direct-I/O loop device, swapon --discard -p 32767).  Phase A:
# two hogs of 300 MiB at once in a 200 MiB memory cgroup; phase B: one hog
# of 1500 MiB in 256 MiB.  Every word of every hog verifies (twice), no
# I/O fails, mem_used_max stays within the limit, the file took pages
# by spilling, swapoff reads everything back, and a discard of the device
# leaves nothing in the file.  Each phase is bounded in time.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require mkswap swapon swapoff
[ -x "$HOG" ] || fz_skip "$HOG not built (make build/hog)"
secs=${FZ_PRESSURE_TIMEOUT:-400}
limit=$((48 << 20))

fz_mount -o disksize=2G,mem_limit=48M,writeback_age=2,backing_dev="$FZ_TMP/backing"
fz_loop "$FZ_IMG" --direct-io=on
timeout 60 mkswap "$FZ_LOOP" >"$FZ_TMP/mkswap" 2>&1 || fz_fail "mkswap: $(cat "$FZ_TMP/mkswap")"
fz_swapon "$FZ_LOOP" --discard -p 32767
fz_cgroup $((200 << 20))

# hogs N MIB CGROUP_MIB TAG - N hogs of MIB MiB at once in CGROUP_MIB; each
# must exit 0 with 0 bad words.
hogs() {
	local n=$1 mib=$2 cg_mib=$3 tag=$4 rc=0 i st
	echo "$((cg_mib << 20))" >"$FZ_CGROUP/memory.limit_in_bytes" ||
		fz_fail "cannot set the cgroup's limit to $cg_mib MiB"
	fz_log "phase $tag: $n hog(s) of $mib MiB at once in a $cg_mib MiB cgroup"
	fz_run_hogs "$secs" "$n" "$mib" "$FZ_TMP/hog$tag" || rc=$?
	[ "$rc" -ne 124 ] || fz_fail "phase $tag: the hogs did not finish in ${secs}s (a hang?)"
	[ "$rc" -eq 0 ] || fz_fail "phase $tag: the hogs' shell exited with $rc"
	for ((i = 1; i <= n; i++)); do
		sed 's/^/    /' "$FZ_TMP/hog$tag.$i" >&2
		st=$(cat "$FZ_TMP/hog$tag.$i.rc")
		[ "$st" -eq 0 ] || fz_fail "phase $tag: hog $i exited with $st"
		grep -q ' 0 bad words' "$FZ_TMP/hog$tag.$i" || fz_fail "phase $tag: hog $i: $(cat "$FZ_TMP/hog$tag.$i")"
	done
	fz_log "phase $tag done: mm_stat $(timeout 10 cat "$FZ_CTL/mm_stat"); bd_stat $(timeout 10 cat "$FZ_CTL/bd_stat")"
}

start=$EPOCHREALTIME
hogs 2 300 200 A
hogs 1 1500 256 B
fz_log "the hogs took $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
fz_show_stats
grep -A3 "^Backing file" "$FZ_CTL/summary" | sed 's/^/    /' >&2

fz_expect_eq "io_stat failed_reads" "$(fz_io failed_reads)" 0
fz_expect_eq "io_stat failed_writes" "$(fz_io failed_writes)" 0
max=$(fz_mm mem_used_max)
[ "$max" -le "$limit" ] || fz_fail "mem_used_max $max over the limit $limit"
read -r bd_count bd_reads bd_writes <"$FZ_CTL/bd_stat"
[ "$bd_writes" -gt 0 ] && [ "$bd_reads" -gt 0 ] ||
	fz_fail "the file was not used both ways under pressure: bd_stat $bd_count $bd_reads $bd_writes"
grep -Eq "\(([1-9][0-9]*) by spilling" "$FZ_CTL/summary" || fz_fail "no page was spilled"

# swapoff reads back whatever is left, from RAM and the file (bounded by
# the undo step's time limit); a discard of the whole device then empties
# the file.
fz_swapoff "$FZ_LOOP"
timeout 60 blkdiscard "$FZ_LOOP" || fz_fail "blkdiscard $FZ_LOOP"
read -r bd_count bd_reads bd_writes <"$FZ_CTL/bd_stat"
[ "$bd_count" -eq 0 ] || fz_fail "bd_count $bd_count after discarding the device"
fz_loop_detach
fz_umount
fz_log "ok"
