#!/bin/bash
# t_pressure: swap under pressure from two processes at once, the quick
# form of bench/stress.sh's two-hog workload.  A 1G image on a direct-I/O
# loop device is swap (mkswap, swapon --discard -p 32767).  Phase A: two
# hogs of FZ_PRESSURE_HOG_MIB (300) MiB each, with different seeds, run at
# once in a 200 MiB memory cgroup; phase B: one such hog in 128 MiB.  Every
# word of every hog must verify (twice), the swap must really have been
# used, and the store may count no failed I/O.  Then, since swapon
# --discard has the kernel discard the hogs' swap clusters as they are
# freed, mem_used_total must fall below 10% of its peak (mem_used_max,
# reset before the hogs) within 20 s of the last hog's exit, polled every
# 0.5 s.  Each phase is bounded by FZ_PRESSURE_TIMEOUT (300 s).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require mkswap swapon swapoff
[ -x "$HOG" ] || fz_skip "$HOG not built (make build/hog)"
hog_mib=${FZ_PRESSURE_HOG_MIB:-300}
cg_a_mib=200
cg_b_mib=128
secs=${FZ_PRESSURE_TIMEOUT:-300}
drain_secs=20

fz_mount -o disksize=1G
fz_loop "$FZ_IMG" --direct-io=on
timeout 60 mkswap "$FZ_LOOP" >"$FZ_TMP/mkswap" 2>&1 || fz_fail "mkswap: $(cat "$FZ_TMP/mkswap")"
fz_swapon "$FZ_LOOP" --discard -p 32767
others=$(awk -v d="$FZ_LOOP" 'NR > 1 && $1 != d { print $1 }' /proc/swaps | tr '\n' ' ')
[ -z "$others" ] ||
	fz_log "warning: other swap is on ($others): some pages may go there (the checks still hold)"
fz_cgroup "$((cg_a_mib << 20))"

# mm FIELD - an mm_stat field, read under a time limit (a hung daemon
# must not hang the test).
mm() {
	local -a v
	read -r -a v <<<"$(timeout 10 cat "$FZ_CTL/mm_stat")" || :
	case $1 in
	orig) echo "${v[0]:-}" ;;
	used) echo "${v[2]:-}" ;;
	max) echo "${v[4]:-}" ;;
	esac
}

# hogs N CGROUP_MIB TAG - run N hogs of hog_mib MiB at once in the cgroup
# limited to CGROUP_MIB, with seeds that differ in every word; each must
# exit 0 with 0 bad words.
hogs() {
	local n=$1 cg_mib=$2 tag=$3 rc=0 i st
	echo "$((cg_mib << 20))" >"$FZ_CGROUP/memory.limit_in_bytes" ||
		fz_fail "cannot set the cgroup's limit to $cg_mib MiB"
	fz_log "phase $tag: $n hogs of $hog_mib MiB at once in a $cg_mib MiB cgroup"
	fz_run_hogs "$secs" "$n" "$hog_mib" "$FZ_TMP/hog$tag" || rc=$?
	[ "$rc" -ne 124 ] || fz_fail "phase $tag: the hogs did not finish in ${secs}s"
	[ "$rc" -eq 0 ] || fz_fail "phase $tag: the hogs' shell exited with $rc"
	for ((i = 1; i <= n; i++)); do
		sed 's/^/    /' "$FZ_TMP/hog$tag.$i" >&2
		st=$(cat "$FZ_TMP/hog$tag.$i.rc")
		[ "$st" -ne 137 ] || fz_fail "phase $tag: hog $i was killed (OOM in the cgroup? swap not taking pages?)"
		[ "$st" -eq 0 ] || fz_fail "phase $tag: hog $i exited with $st"
		grep -q ' 0 bad words' "$FZ_TMP/hog$tag.$i" || fz_fail "phase $tag: hog $i: $(cat "$FZ_TMP/hog$tag.$i")"
	done
}

echo 0 >"$FZ_CTL/mem_used_max" || fz_fail "cannot reset control/mem_used_max"
start=$EPOCHREALTIME
hogs 2 "$cg_a_mib" A
hogs 1 "$cg_b_mib" B
exited=$EPOCHREALTIME
peak=$(mm max)
fz_log "the hogs took $(awk -v a="$start" -v b="$exited" 'BEGIN { printf "%.1f", b - a }') s; peak mem_used_total $((peak >> 20)) MiB"
fz_show_stats

# Swap was used: at least a quarter of what did not fit in phase A, even
# compressed.
want=$(((2 * hog_mib - cg_a_mib) / 4))
[ $((peak >> 20)) -ge "$want" ] ||
	fz_fail "peak mem_used_total $((peak >> 20)) MiB < $want MiB: the swap was hardly used"
fz_expect_eq "io_stat failed_reads" "$(fz_io failed_reads)" 0
fz_expect_eq "io_stat failed_writes" "$(fz_io failed_writes)" 0

# The hogs are gone: their swap clusters are freed and discarded.
drained=''
for ((i = 0; i <= drain_secs * 2; i++)); do
	used=$(mm used)
	[[ $used =~ ^[0-9]+$ ]] || fz_fail "cannot read mm_stat (got '$used')"
	if [ "$used" -lt $((peak / 10)) ]; then
		drained=$(awk -v a="$exited" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
		break
	fi
	[ "$i" -eq $((drain_secs * 2)) ] || sleep 0.5
done
fz_show_stats
fz_log "swap: $(grep "^${FZ_LOOP}[[:space:]]" /proc/swaps)"
[ -n "$drained" ] ||
	fz_fail "mem_used_total is $((used >> 10)) KiB ${drain_secs} s after the hogs exited: not below 10% of its peak $((peak >> 10)) KiB"
fz_log "mem_used_total fell below 10% of its peak $drained s after the hogs exited"

fz_swapoff "$FZ_LOOP"
fz_loop_detach
fz_umount
fz_log "ok"
