#!/bin/bash
# t_populate_fail: the allocator's pre-faulting may fail, and must then
# change nothing.  The daemon runs under build/madvise_shim.so, whose
# madvise() refuses MADV_POPULATE_WRITE with ENOMEM (as the kernel does
# when the daemon's memory cgroup is at its limit, and as older kernels
# refuse it always), so that every refill of the allocator's cache (its
# target is -o reserve=, default 4M) is refused, and the stores fault its
# pages in themselves.  On a 512M
# image behind a direct-I/O loop device, fio (libaio, direct=1, bs=4k,
# rw=randwrite, iodepth=32, FZ_FIO_JOBS (4) jobs of FZ_FIO_MIB (64) MiB
# each) writes every block once with a crc32c header and reads it all
# back (verify_fatal=1): no verify error, no failed I/O.  The shim's log
# must show refusals both at the mount (the first refill) and during the
# I/O, so the test cannot pass with the shim out of the way.  Bounded by
# FZ_FIO_TIMEOUT (300 s).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require fio
shim=${FZ_MADVISE_SHIM:-$FZ_ROOT/build/madvise_shim.so}
[ -f "$shim" ] || fz_skip "$shim not built (make build/madvise_shim.so)"
jobs=${FZ_FIO_JOBS:-4}
mib=${FZ_FIO_MIB:-64}
secs=${FZ_FIO_TIMEOUT:-300}
shimlog=$FZ_TMP/madvise_shim.log

# shim_refused - refusals the shim has logged so far (0 if none).
shim_refused() {
	awk '$1 == "refused" { n = $2 } END { print n + 0 }' "$shimlog" 2>/dev/null || echo 0
}

fz_mount --env LD_PRELOAD="$shim" --env FZ_MADVISE_SHIM_LOG="$shimlog" \
	-o disksize=512M
grep -q "$shim" "/proc/$FZ_PID/maps" || fz_fail "the daemon did not load $shim"
at_mount=$(shim_refused)
[ "$at_mount" -gt 0 ] || fz_fail "no MADV_POPULATE_WRITE refused by the mount's refill"
fz_log "refusals logged at the mount: $at_mount"

fz_loop "$FZ_IMG" --direct-io=on
rc=0
fz_run "$secs" fio --name=populate-fail --filename="$FZ_LOOP" \
	--ioengine=libaio --direct=1 --rw=randwrite --bs=4k --iodepth=32 \
	--numjobs="$jobs" --size="${mib}M" --offset_increment="${mib}M" \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_dump=0 \
	--verify_state_save=0 --group_reporting >"$FZ_TMP/fio.out" 2>&1 || rc=$?
grep -E 'err=|verify|IOPS|bad|error' "$FZ_TMP/fio.out" | head -n 20 | sed 's/^/    /' >&2 || :
fz_show_stats
after=$(shim_refused)
fz_log "refusals logged after fio: $after"
[ "$rc" -ne 124 ] || fz_fail "fio did not finish in ${secs}s"
if grep -qiE 'verify: bad|bad magic|crc32c: verify failed|verify failed' "$FZ_TMP/fio.out"; then
	fz_fail "fio reported a verify error: $(grep -iE 'verify|bad' "$FZ_TMP/fio.out" | head -5)"
fi
[ "$rc" -eq 0 ] || fz_fail "fio exited with $rc: $(tail -n 30 "$FZ_TMP/fio.out")"
grep -qE 'err= *0' "$FZ_TMP/fio.out" || fz_fail "fio's report has no 'err= 0': $(tail -n 30 "$FZ_TMP/fio.out")"
[ "$after" -gt "$at_mount" ] ||
	fz_fail "the shim refused nothing during the I/O ($after refusals logged in all)"
fz_expect_eq "mm_stat orig_data_size" "$(fz_mm orig_data_size)" $((jobs * mib << 20))
fz_expect_eq "io_stat failed_reads" "$(fz_io failed_reads)" 0
fz_expect_eq "io_stat failed_writes" "$(fz_io failed_writes)" 0

fz_loop_detach
fz_umount
fz_log "ok"
