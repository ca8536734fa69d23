#!/bin/bash
# t_fstab: mounting through mount(8) and libfuse's mount.fuse3 helper,
# which runs "fusezram SOURCE MOUNTPOINT -o OPTIONS": with
# "mount -t fuse.fusezram fusezram DIR -o disksize=...", and with an
# /etc/fstab-style line in a file of our own (mount --fstab FILE DIR),
# generic options (rw, dev, suid, noatime, relatime, nofail...) included.
# Also fusezram SOURCE MOUNTPOINT run directly, and a third argument
# refused.
#
# mount(8) runs its helpers without PATH, so the shell that mount.fuse3
# starts finds fusezram only in the default directories.  The test runs
# in a private mount namespace (unshare) where a directory holding a
# symlink to the fusezram under test is bind-mounted over /usr/local/sbin,
# first in that default path: nothing is installed, and nothing outside
# the namespace sees a mount.
if [ -z "${FZ_FSTAB_OUTER_NS:-}" ] && command -v unshare >/dev/null 2>&1; then
	FZ_FSTAB_OUTER_NS=$(readlink /proc/self/ns/mnt) || FZ_FSTAB_OUTER_NS=unknown
	export FZ_FSTAB_OUTER_NS
	exec unshare --mount --propagation private bash "$0" "$@"
fi
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require_fuse
fz_require unshare mount umount
[ -n "${FZ_FSTAB_OUTER_NS:-}" ] || fz_skip "unshare not found"
[ "$(readlink /proc/self/ns/mnt)" != "$FZ_FSTAB_OUTER_NS" ] ||
	fz_fail "not in a private mount namespace: refusing to bind-mount over /usr/local/sbin"
helper=$(PATH=$PATH:/sbin:/usr/sbin command -v mount.fuse3 || :)
[ -n "$helper" ] || fz_skip "mount.fuse3 not found (package fuse3)"
[ -d /usr/local/sbin ] || fz_skip "/usr/local/sbin missing: nowhere to put fusezram on mount's default path"

case $FUSEZRAM in
/*) ;;
*) FUSEZRAM=$(cd "$(dirname "$FUSEZRAM")" && pwd)/$(basename "$FUSEZRAM") ;;
esac
mkdir "$FZ_TMP/bin"
ln -s "$FUSEZRAM" "$FZ_TMP/bin/fusezram"
# (From /, so that mount(8) does not turn the source into a path.)
cd /
mount --bind "$FZ_TMP/bin" /usr/local/sbin || fz_fail "bind-mounting $FZ_TMP/bin over /usr/local/sbin"
fz__register "fs|/usr/local/sbin"

# mounted_by_helper DIR - check DIR is a fusezram mount served by a
# detached daemon; register its cleanup; set PID.
mounted_by_helper() {
	local dir=$1 type
	fz_is_mounted "$dir" || fz_fail "nothing mounted at $dir"
	type=$(awk -v d="$dir" '$2 == d { t = $3 } END { print t }' /proc/self/mounts)
	fz_expect_eq "type of the mount at $dir" "$type" fuse.fusezram
	PID=$(fz__find_daemon "$dir") || fz_fail "no fusezram daemon serves $dir"
	FZ_CLEANUP[${#FZ_CLEANUP[@]} - 1]="fuse|$dir|$PID|-"
	fz_log "mounted at $dir by the helper: daemon $PID: $(tr '\0' ' ' <"/proc/$PID/cmdline")"
	fz_check_transport "$dir"
}

# roundtrip DIR - 1 MiB written and read back through DIR/image.
roundtrip() {
	head -c $((1 << 20)) /dev/urandom >"$FZ_TMP/data"
	dd if="$FZ_TMP/data" of="$1/image" bs=1M oflag=direct conv=notrunc status=none ||
		fz_fail "writing $1/image"
	fz_range "$1/image" 0 $((1 << 20)) >"$FZ_TMP/back"
	fz_expect_cmp "$1/image" "$FZ_TMP/back" "$FZ_TMP/data"
}

# unmount_helper DIR PID - umount(8), then the daemon must end.
unmount_helper() {
	timeout 30 umount "$1" || fz_fail "umount $1"
	# shellcheck disable=SC2016 # expanded at each poll
	fz_wait_until 20 eval '! fz__alive "$2"' ||
		fz_fail "daemon $2 still running 20 s after umount $1"
	fz__undo_match fuse "$1"
}

# ---- mount -t fuse.fusezram ------------------------------------------------

mnt=$FZ_TMP/mnt-t
mkdir "$mnt"
fz__register "fuse|$mnt||-"
timeout 60 mount -t fuse.fusezram fusezram "$mnt" \
	-o disksize=64M,comp_algorithm=zstd,noatime,nodev,nosuid >"$FZ_TMP/out" 2>&1 ||
	fz_fail "mount -t fuse.fusezram: $(cat "$FZ_TMP/out")"
mounted_by_helper "$mnt"
fz_expect_eq "disksize (mount -t)" "$(cat "$mnt/control/disksize")" $((64 << 20))
fz_expect_eq "comp_algorithm (mount -t)" "$(cat "$mnt/control/comp_algorithm")" "lz4 lz4hc [zstd]"
opts=$(awk -v d="$mnt" '$2 == d { print $4 }' /proc/self/mounts)
case ,$opts, in
*,noatime,*) ;;
*) fz_fail "options of the mount: $opts (no noatime)" ;;
esac
roundtrip "$mnt"
unmount_helper "$mnt" "$PID"

# ---- a line of fstab ----------------------------------------------------------

mnt=$FZ_TMP/mnt-fstab
mkdir "$mnt"
printf '# fusezram test\nfusezram %s fuse.fusezram disksize=32M,comp_algorithm=zstd,mem_limit=16M,relatime,nofail 0 0\n' \
	"$mnt" >"$FZ_TMP/fstab"
fz_log "fstab: $(tail -n 1 "$FZ_TMP/fstab")"
fz__register "fuse|$mnt||-"
timeout 60 mount --fstab "$FZ_TMP/fstab" "$mnt" >"$FZ_TMP/out" 2>&1 ||
	fz_fail "mount --fstab $FZ_TMP/fstab $mnt: $(cat "$FZ_TMP/out")"
mounted_by_helper "$mnt"
fz_expect_eq "disksize (fstab)" "$(cat "$mnt/control/disksize")" $((32 << 20))
fz_expect_eq "comp_algorithm (fstab)" "$(cat "$mnt/control/comp_algorithm")" "lz4 lz4hc [zstd]"
fz_expect_eq "mem_limit (fstab)" "$(cat "$mnt/control/mem_limit")" $((16 << 20))
roundtrip "$mnt"
unmount_helper "$mnt" "$PID"

# ---- SOURCE MOUNTPOINT directly; a third argument is refused -----------------

fz_mount --detach anything -o disksize=8M
fz_expect_eq "disksize (fusezram SOURCE MOUNTPOINT)" "$(cat "$FZ_CTL/disksize")" $((8 << 20))
roundtrip "$FZ_MNT"
fz_umount

mnt=$FZ_TMP/mnt-3
mkdir "$mnt"
fz__register "fuse|$mnt||-"
rc=0
timeout 30 "$FUSEZRAM" src "$mnt" extra >"$FZ_TMP/out" 2>&1 || rc=$?
fz_is_mounted "$mnt" && fz_fail "fusezram src $mnt extra: mounted"
fz_expect_eq "exit status of fusezram SRC MNT EXTRA" "$rc" 1
grep -q "unexpected argument 'extra'" "$FZ_TMP/out" ||
	fz_fail "fusezram src $mnt extra: $(cat "$FZ_TMP/out")"

fz_log "ok"
