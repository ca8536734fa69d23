#!/bin/bash
# t_memlimit_dio: a loop device (direct I/O) on an image with mem_limit=32M
# takes 96 MiB of random data with dd bs=1M oflag=direct.  The write must
# fail (dd exits non-zero) once the limit is hit, and every byte dd reports
# as written must read back: a request the store cannot hold whole is an
# error, never a short count, which the loop driver would complete as a
# successful write and so lose the rest silently.  The kernel's
# synchronous direct-I/O path (-o no_async_dio) sends an I/O longer than
# max_write as several FUSE writes in turn and, when a later one fails,
# reports the earlier ones' bytes as a short write, which no reply of the
# daemon can prevent: so fusezram refuses no_async_dio, with one line
# naming it, and nothing is mounted.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require dd cmp head
fz_require_loop

src=$FZ_TMP/src
fz_run 60 head -c $((96 << 20)) /dev/urandom >"$src" ||
	fz_fail "cannot make 96 MiB of random data"

# check_mode NAME [fusezram options...]
check_mode() {
	local name=$1 rc=0 bytes out=$FZ_TMP/back.$1 err=$FZ_TMP/dd.$1
	shift
	fz_mount -o disksize=128M,mem_limit=32M "$@"
	fz_loop "$FZ_IMG" --direct-io=on
	fz_log "$name: $FZ_LOOP takes requests of up to $(cat "/sys/block/${FZ_LOOP#/dev/}/queue/max_sectors_kb") KiB"
	fz_run 120 dd if="$src" of="$FZ_LOOP" bs=1M oflag=direct 2>"$err" || rc=$?
	sed "s/^/    $name: /" "$err" >&"$FZ_ERR"
	[ "$rc" -ne 124 ] || fz_fail "$name: dd timed out"
	bytes=$(sed -n 's/^\([0-9][0-9]*\) bytes.*copied.*/\1/p' "$err" | tail -n 1)
	[ -n "$bytes" ] || fz_fail "$name: no byte count in dd's output"
	fz_log "$name: dd exited with $rc after $bytes bytes; mm_stat $(cat "$FZ_CTL/mm_stat")"
	# Read back what dd says it wrote, past any cache.
	if [ "$bytes" -gt 0 ]; then
		fz_run 120 dd if="$FZ_LOOP" of="$out" bs=1M count="$bytes" \
			iflag=direct,count_bytes status=none ||
			fz_fail "$name: reading back $FZ_LOOP failed"
		cmp -n "$bytes" "$src" "$out" >&"$FZ_ERR" ||
			fz_fail "$name: the $bytes bytes dd reports as written do not read back"
	fi
	[ "$rc" -ne 0 ] ||
		fz_fail "$name: dd wrote $bytes bytes of random data under mem_limit=32M and reported success"
	[ "$bytes" -lt $((96 << 20)) ] ||
		fz_fail "$name: dd failed but reports all $bytes bytes written"
	rm -f "$out"
	fz_loop_detach
	fz_umount
}

check_mode async_dio

mnt=$FZ_TMP/refused
mkdir "$mnt"
fz__register "fuse|$mnt||-"
rc=0
timeout 30 "$FUSEZRAM" -o no_async_dio "$mnt" 2>"$FZ_TMP/err" || rc=$?
! fz_is_mounted "$mnt" || fz_fail "-o no_async_dio mounted (exit $rc)"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fz_fail "-o no_async_dio: exit status $rc"
[ "$(wc -l <"$FZ_TMP/err")" -eq 1 ] && grep -q "no_async_dio" "$FZ_TMP/err" ||
	fz_fail "-o no_async_dio: not one line naming it: $(cat "$FZ_TMP/err")"
fz_log "refused: $(cat "$FZ_TMP/err")"
fz_log "ok"
