#!/bin/bash
# t_swap: the image as swap.  A 1G image on a loop device with direct I/O,
# mkswap, swapon --discard at the highest priority; the hog (build/hog)
# allocates FZ_HOG_MIB (700) MiB in a memory cgroup limited to 256 MiB,
# so most of it goes out to our swap and comes back, and verifies every
# word twice.  Swap must really have been used (peak of /proc/swaps Used
# and of orig_data_size, sampled while the hog runs), no word may be wrong,
# and the store may count no failed I/O.  Bounded by FZ_SWAP_TIMEOUT (300 s).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require mkswap swapon swapoff
[ -x "$HOG" ] || fz_skip "$HOG not built (make build/hog)"
hog_mib=${FZ_HOG_MIB:-700}
limit_mib=256
secs=${FZ_SWAP_TIMEOUT:-300}

fz_mount -o disksize=1G
fz_loop "$FZ_IMG" --direct-io=on
dio=$(losetup -n -l -O DIO "$FZ_LOOP" | tr -d '[:space:]')
fz_expect_eq "losetup DIO of $FZ_LOOP" "$dio" 1
timeout 60 mkswap "$FZ_LOOP" >"$FZ_TMP/mkswap" 2>&1 || fz_fail "mkswap: $(cat "$FZ_TMP/mkswap")"
fz_swapon "$FZ_LOOP" --discard -p 32767
grep -q "^${FZ_LOOP}[[:space:]]" /proc/swaps || fz_fail "$FZ_LOOP not in /proc/swaps after swapon"
fz_log "swap: $(grep "^${FZ_LOOP}[[:space:]]" /proc/swaps)"
fz_cgroup "$((limit_mib << 20))"

# Sample the peaks while the hog runs (bounded; stopped by the cleanup too).
sample() {
	local end=$((SECONDS + secs + 60)) u o su=0 so=0
	while [ "$SECONDS" -lt "$end" ] && [ ! -e "$FZ_TMP/stop" ]; do
		u=$(fz_swap_used "$FZ_LOOP")
		o=0
		read -r o _ <"$FZ_CTL/mm_stat" 2>/dev/null || o=0
		if [ "$u" -gt "$su" ] || [ "$o" -gt "$so" ]; then
			[ "$u" -le "$su" ] || su=$u
			[ "$o" -le "$so" ] || so=$o
			echo "$su $so" >"$FZ_TMP/peak.new"
			mv "$FZ_TMP/peak.new" "$FZ_TMP/peak"
		fi
		sleep 0.2
	done
}
echo "0 0" >"$FZ_TMP/peak"
sample &
sampler=$!
fz_defer "touch $FZ_TMP/stop; kill $sampler 2>/dev/null; wait $sampler 2>/dev/null || :"

fz_log "hog: $hog_mib MiB in a $limit_mib MiB cgroup"
rc=0
# shellcheck disable=SC2016 # $$ and $1.. belong to the inner shell
fz_run "$secs" bash -c 'echo $$ >"$1/cgroup.procs" && exec "$2" "$3" 2' _ \
	"$FZ_CGROUP" "$HOG" "$hog_mib" >"$FZ_TMP/hog.out" 2>&1 || rc=$?
cat "$FZ_TMP/hog.out" >&2
touch "$FZ_TMP/stop"
wait "$sampler" 2>/dev/null || :
read -r swap_kib orig_peak <"$FZ_TMP/peak"
fz_log "peak swap used on $FZ_LOOP: $((swap_kib / 1024)) MiB; peak orig_data_size: $((orig_peak >> 20)) MiB"
fz_show_stats
[ -f "$FZ_CGROUP/memory.failcnt" ] && fz_log "cgroup memory.failcnt: $(cat "$FZ_CGROUP/memory.failcnt")"

[ "$rc" -ne 124 ] || fz_fail "the hog did not finish in ${secs}s"
[ "$rc" -ne 137 ] || fz_fail "the hog was killed (OOM in the cgroup? swap not taking pages?)"
[ "$rc" -eq 0 ] || fz_fail "the hog exited with $rc: $(cat "$FZ_TMP/hog.out")"
grep -q ' 0 bad words' "$FZ_TMP/hog.out" || fz_fail "hog output: $(cat "$FZ_TMP/hog.out")"

# At least what did not fit in the cgroup went out (with some slack for
# what the kernel keeps in the swap cache).
want=$(((hog_mib - limit_mib) / 2))
[ $((swap_kib / 1024)) -ge "$want" ] ||
	fz_fail "peak swap used $((swap_kib / 1024)) MiB < $want MiB: the swap was not used"
[ $((orig_peak >> 20)) -ge "$want" ] ||
	fz_fail "peak orig_data_size $((orig_peak >> 20)) MiB < $want MiB: the image did not hold the swapped pages"
fz_expect_eq "io_stat failed_reads" "$(fz_io failed_reads)" 0
fz_expect_eq "io_stat failed_writes" "$(fz_io failed_writes)" 0

fz_swapoff "$FZ_LOOP"
grep -q "^${FZ_LOOP}[[:space:]]" /proc/swaps && fz_fail "$FZ_LOOP still swap after swapoff"
fz_loop_detach
fz_umount
fz_log "ok"
