#!/bin/bash
# t_fio_verify: random 4 KiB writes from several jobs at queue depth 32,
# each block checked with crc32c, the quick form of bench/stress.sh's fio
# target.  A 512M image on a direct-I/O loop device; fio (libaio,
# direct=1, bs=4k, rw=randwrite, iodepth=32) runs FZ_FIO_JOBS (4) jobs, each
# on its own FZ_FIO_MIB (64) MiB region, writes every block of it once in
# random order with a crc32c header and then reads it all back and checks
# it (verify=crc32c, verify_fatal=1).  fio must exit 0 with no verify
# error, the image must hold what was written (orig_data_size) and the
# store may count no failed I/O.  Bounded by FZ_FIO_TIMEOUT (300 s).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require fio
jobs=${FZ_FIO_JOBS:-4}
mib=${FZ_FIO_MIB:-64}
secs=${FZ_FIO_TIMEOUT:-300}

fz_mount -o disksize=512M
fz_loop "$FZ_IMG" --direct-io=on
fz_expect_eq "losetup DIO of $FZ_LOOP" "$(losetup -n -l -O DIO "$FZ_LOOP" | tr -d '[:space:]')" 1

rc=0
fz_run "$secs" fio --name=randwrite-verify --filename="$FZ_LOOP" \
	--ioengine=libaio --direct=1 --rw=randwrite --bs=4k --iodepth=32 \
	--numjobs="$jobs" --size="${mib}M" --offset_increment="${mib}M" \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_dump=0 \
	--verify_state_save=0 --group_reporting >"$FZ_TMP/fio.out" 2>&1 || rc=$?
grep -E 'err=|verify|IOPS|bad|error' "$FZ_TMP/fio.out" | sed 's/^/    /' >&2 || :
fz_show_stats
[ "$rc" -ne 124 ] || fz_fail "fio did not finish in ${secs}s"
[ "$rc" -eq 0 ] || fz_fail "fio exited with $rc: $(tail -n 30 "$FZ_TMP/fio.out")"
if grep -qiE 'verify: bad|bad magic|crc32c: verify failed|verify failed' "$FZ_TMP/fio.out"; then
	fz_fail "fio reported a verify error: $(grep -iE 'verify' "$FZ_TMP/fio.out" | head -5)"
fi
grep -qE 'err= *0' "$FZ_TMP/fio.out" || fz_fail "fio's report has no 'err= 0': $(tail -n 30 "$FZ_TMP/fio.out")"
# Every block of every region was written (pages holding only fio's
# header and pattern are never same-filled, so all count).
fz_expect_eq "mm_stat orig_data_size" "$(fz_mm orig_data_size)" $((jobs * mib << 20))
fz_expect_eq "io_stat failed_reads" "$(fz_io failed_reads)" 0
fz_expect_eq "io_stat failed_writes" "$(fz_io failed_writes)" 0

fz_loop_detach
fz_umount
fz_log "ok"
