#!/bin/bash
#
# mount-default.sh MNT [fusezram options...] - mount a fusezram image with
# the default options (1 GiB, lz4) at MNT, creating MNT if needed, and print
# what to do next.  If a fusezram is already mounted at MNT, says so and
# exits 0.  FUSEZRAM names the binary (default: the one in the repository).

set -euo pipefail

if [ "$#" -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
	echo "usage: $0 MOUNTPOINT [fusezram options...]" >&2
	exit 2
fi
mnt=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
fusezram=${FUSEZRAM:-$root/fusezram}

if [ ! -x "$fusezram" ]; then
	echo "mount-default: $fusezram not found; build it with 'make fusezram'" >&2
	exit 1
fi
mkdir -p -- "$mnt"
mnt=$(cd -- "$mnt" && pwd -P)

fstype=$(findmnt -n -o FSTYPE --mountpoint "$mnt" 2>/dev/null | tail -n 1 || :)
if [ -n "$fstype" ]; then
	if [[ $fstype == fuse* ]] && [ -f "$mnt/control/mm_stat" ]; then
		echo "mount-default: a fusezram image is already mounted at $mnt ($(stat -c %s "$mnt/image") bytes)"
		exit 0
	fi
	echo "mount-default: $mnt already has a $fstype filesystem mounted; choose another directory" >&2
	exit 1
fi

"$fusezram" "$@" "$mnt"
# The daemon detaches once mounted; wait (bounded) for the image to show.
for _ in $(seq 100); do
	[ -f "$mnt/image" ] && break
	sleep 0.1
done
if [ ! -f "$mnt/image" ]; then
	echo "mount-default: fusezram started but $mnt/image did not appear" >&2
	exit 1
fi

img=$(printf %q "$mnt/image")
m=$(printf %q "$mnt")
size=$(stat -c %s "$mnt/image")
cat <<EOF
fusezram: a $((size >> 20)) MiB compressed image is mounted at $mnt.
Its data lives only in RAM; statistics: cat $m/control/mm_stat

What next (as root):
  dev=\$(losetup -f --show --direct-io=on $img)
  as swap:          mkswap "\$dev" && swapon --discard -p 100 "\$dev"
  as a filesystem:  mkfs.ext4 -q "\$dev" && mount "\$dev" /some/dir
Teardown, in this order:
  swapoff "\$dev"   (or: umount /some/dir)
  losetup -d "\$dev"
  fusermount3 -u $m
EOF
