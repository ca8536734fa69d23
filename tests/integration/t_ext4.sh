#!/bin/bash
# t_ext4: the image as a block device.  A loop device with direct I/O on the
# image, mkfs.ext4, a directory tree (FZ_EXT4_SRC, default /usr/include)
# copied in, umount, fsck.ext4 -f -n clean, remount, every file compared;
# then fstrim after deleting half the tree gives memory back, and fsck is
# still clean.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require mkfs.ext4 fsck.ext4 mount umount fstrim cp diff sha256sum find
src=${FZ_EXT4_SRC:-/usr/include}
[ -d "$src" ] || fz_skip "no directory $src to copy (FZ_EXT4_SRC)"

fz_mount -o disksize=1G
fz_loop "$FZ_IMG" --direct-io=on
dio=$(losetup -n -l -O DIO "$FZ_LOOP" | tr -d '[:space:]')
fz_expect_eq "losetup DIO of $FZ_LOOP" "$dio" 1

fz_run 300 mkfs.ext4 -q -F "$FZ_LOOP" || fz_fail "mkfs.ext4 $FZ_LOOP failed"
fz_show_stats
fs=$FZ_TMP/fs
fz_mount_fs "$FZ_LOOP" "$fs"
fz_run 600 cp -a "$src" "$fs/tree" || fz_fail "cp -a $src failed"
# Checksums of the source, to compare the copy with after a remount.
(cd "$src" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum) >"$FZ_TMP/src.sum"
fz_log "copied $(wc -l <"$FZ_TMP/src.sum") files, $(du -sh "$fs/tree" | cut -f1)"
fz_run 120 sync -f "$fs" || fz_fail "sync failed"
fz_show_stats
fz_umount_fs "$fs"

fsck_clean() {
	local rc=0
	fz_run 300 fsck.ext4 -f -n "$FZ_LOOP" >"$FZ_TMP/fsck" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		cat "$FZ_TMP/fsck" >&2
		fz_fail "fsck.ext4 -f -n $FZ_LOOP $1: exit $rc"
	fi
}
fsck_clean "after the copy"

# Remount and compare everything: contents, and the tree's shape.
fz_mount_fs "$FZ_LOOP" "$fs"
(cd "$fs/tree" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum) >"$FZ_TMP/copy.sum"
fz_expect_cmp "sha256 of every file, source vs copy" "$FZ_TMP/copy.sum" "$FZ_TMP/src.sum"
fz_run 600 diff -r --no-dereference "$src" "$fs/tree" >"$FZ_TMP/diff" 2>&1 ||
	fz_fail "diff -r $src $fs/tree: $(head -n 20 "$FZ_TMP/diff")"

# Delete about half the files, fstrim: the loop device passes the discard
# to the image as a punched hole, and the store frees those pages.
orig0=$(fz_mm orig_data_size)
mapfile -d '' top < <(find "$fs/tree" -mindepth 1 -maxdepth 1 -print0 | sort -z)
for i in "${!top[@]}"; do
	[ $((i % 2)) = 1 ] || rm -rf -- "${top[i]}"
done
fz_run 120 sync -f "$fs" || fz_fail "sync failed"
fz_run 300 fstrim "$fs" || fz_fail "fstrim $fs failed"
orig1=$(fz_mm orig_data_size)
fz_log "orig_data_size $orig0 -> $orig1 after deleting half and fstrim"
[ "$orig1" -lt "$orig0" ] || fz_fail "fstrim freed nothing: orig_data_size $orig0 -> $orig1"
fz_umount_fs "$fs"
fsck_clean "after fstrim"
# Every file left is intact (read afresh from the device after remounting).
fz_mount_fs "$FZ_LOOP" "$fs"
(cd "$fs/tree" && sha256sum --quiet --strict -c --ignore-missing "$FZ_TMP/src.sum") >"$FZ_TMP/check" 2>&1 ||
	fz_fail "files changed after fstrim: $(head -n 20 "$FZ_TMP/check")"
left=$(find "$fs/tree" -type f | wc -l)
[ "$left" -gt 0 ] || fz_fail "no files left after deleting half"
fz_umount_fs "$fs"
fz_show_stats
fz_expect_eq "io_stat failed_reads" "$(fz_io failed_reads)" 0
fz_expect_eq "io_stat failed_writes" "$(fz_io failed_writes)" 0
fz_loop_detach
fz_umount
fz_log "ok"
