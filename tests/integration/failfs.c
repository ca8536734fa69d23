/*
 * failfs - a FUSE file system whose one data file fails reads or writes
 * on demand: the backing file of the fault tests (t_wb_faults), where this
 * kernel has no device-mapper to make a failing disk of.
 *
 *	failfs DIR MOUNTPOINT [FUSE options, e.g. -f]
 *
 * The mount holds:
 *	data		a regular file, passed through to DIR/data (created
 *			empty, 0600, at start): read, write, truncate, chmod,
 *			utimens, fallocate (punching too, where DIR's file
 *			system can), fsync; statfs is DIR's
 *	fail_reads	"0" or "1": while 1, every read of data fails with EIO
 *	fail_writes	"0" or "1": while 1, every write of data fails with EIO
 *			(fallocate and truncate still work: only the writes
 *			of bytes fail, as on a disk with bad sectors)
 *	errors		read-only: the EIO answers given so far
 *
 * data and the control files are opened direct_io, so that every read
 * and write reaches us (nothing is served from, or delayed in, the
 * kernel's page cache) and a control file's text is current.  flock(2)
 * is left to the kernel (no .flock: the kernel locks locally), which is
 * what fusezram's zb_open() needs.  Anything else (creating, removing,
 * renaming files) is refused.  A control file takes one word per write,
 * with or without a newline; anything else is EINVAL.
 *
 * Multi-threaded (libfuse's loop); the switches and the count are atomics.
 * Exit status: libfuse's (fuse_main), 1 for a bad DIR.
 */
#define FUSE_USE_VERSION 314

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static int ff_fd = -1;			/* DIR/data, O_RDWR; never closed */
static _Atomic int ff_fail_reads, ff_fail_writes;
static _Atomic unsigned long ff_errors;

enum ff_kind { FF_NONE, FF_ROOT, FF_DATA, FF_FAIL_READS, FF_FAIL_WRITES,
	       FF_ERRORS };

static const struct {
	const char *name;
	enum ff_kind kind;
} ff_files[] = {
	{ "data", FF_DATA },
	{ "fail_reads", FF_FAIL_READS },
	{ "fail_writes", FF_FAIL_WRITES },
	{ "errors", FF_ERRORS },
};
#define FF_NFILES (sizeof(ff_files) / sizeof(ff_files[0]))

static enum ff_kind ff_kind(const char *path)
{
	size_t i;

	if (!strcmp(path, "/"))
		return FF_ROOT;
	for (i = 0; i < FF_NFILES; i++)
		if (path[0] == '/' && !strcmp(path + 1, ff_files[i].name))
			return ff_files[i].kind;
	return FF_NONE;
}

/* The switch a control file sets, or NULL. */
static _Atomic int *ff_switch(enum ff_kind k)
{
	return k == FF_FAIL_READS ? &ff_fail_reads :
	       k == FF_FAIL_WRITES ? &ff_fail_writes : NULL;
}

static int ff_eio(void)
{
	atomic_fetch_add(&ff_errors, 1);
	return -EIO;
}

static void *ff_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->entry_timeout = cfg->attr_timeout = cfg->negative_timeout = 0;
	return NULL;
}

static int ff_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	enum ff_kind k = ff_kind(path);

	(void)fi;
	memset(st, 0, sizeof(*st));
	switch (k) {
	case FF_NONE:
		return -ENOENT;
	case FF_ROOT:
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	case FF_DATA:
		return fstat(ff_fd, st) ? -errno : 0;
	default:
		st->st_mode = S_IFREG | (k == FF_ERRORS ? 0444 : 0644);
		st->st_nlink = 1;
		st->st_size = 32;	/* direct_io: reads ignore it */
		return 0;
	}
}

static int ff_readdir(const char *path, void *buf, fuse_fill_dir_t fill,
		      off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	size_t i;

	(void)off, (void)fi, (void)flags;
	if (ff_kind(path) != FF_ROOT)
		return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	for (i = 0; i < FF_NFILES; i++)
		fill(buf, ff_files[i].name, NULL, 0, 0);
	return 0;
}

static int ff_open(const char *path, struct fuse_file_info *fi)
{
	enum ff_kind k = ff_kind(path);

	if (k == FF_NONE)
		return -ENOENT;
	if (k == FF_ROOT)
		return -EISDIR;
	if (k == FF_ERRORS && (fi->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	fi->direct_io = 1;
	return 0;
}

static int ff_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	enum ff_kind k = ff_kind(path);
	_Atomic int *sw = ff_switch(k);
	char text[32];
	size_t len;
	ssize_t n;

	(void)fi;
	if (k == FF_DATA) {
		if (atomic_load(&ff_fail_reads))
			return ff_eio();
		do
			n = pread(ff_fd, buf, size, off);
		while (n < 0 && errno == EINTR);
		return n < 0 ? -errno : (int)n;
	}
	if (sw)
		snprintf(text, sizeof(text), "%d\n", atomic_load(sw));
	else
		snprintf(text, sizeof(text), "%lu\n", atomic_load(&ff_errors));
	len = strlen(text);
	if (off < 0 || (size_t)off >= len)
		return 0;
	if (size > len - (size_t)off)
		size = len - (size_t)off;
	memcpy(buf, text + off, size);
	return (int)size;
}

static int ff_write(const char *path, const char *buf, size_t size,
		    off_t off, struct fuse_file_info *fi)
{
	enum ff_kind k = ff_kind(path);
	_Atomic int *sw = ff_switch(k);
	ssize_t n;

	(void)fi;
	if (k == FF_DATA) {
		if (atomic_load(&ff_fail_writes))
			return ff_eio();
		do
			n = pwrite(ff_fd, buf, size, off);
		while (n < 0 && errno == EINTR);
		return n < 0 ? -errno : (int)n;
	}
	if (!sw)
		return -EACCES;
	if (size == 2 && buf[1] != '\n')
		return -EINVAL;
	if ((size != 1 && size != 2) || (buf[0] != '0' && buf[0] != '1'))
		return -EINVAL;
	atomic_store(sw, buf[0] == '1');
	return (int)size;
}

static int ff_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	enum ff_kind k = ff_kind(path);

	(void)fi;
	if (k == FF_DATA)
		return ftruncate(ff_fd, size) ? -errno : 0;
	return ff_switch(k) ? 0 : -EACCES;	/* echo 1 > fail_reads: O_TRUNC */
}

static int ff_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)fi;
	if (ff_kind(path) != FF_DATA)
		return -EPERM;
	return fchmod(ff_fd, mode) ? -errno : 0;
}

static int ff_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	(void)fi;
	if (ff_kind(path) != FF_DATA)
		return 0;
	return futimens(ff_fd, tv) ? -errno : 0;
}

static int ff_fallocate(const char *path, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	(void)fi;
	if (ff_kind(path) != FF_DATA)
		return -EOPNOTSUPP;
	return fallocate(ff_fd, mode, off, len) ? -errno : 0;
}

static int ff_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)datasync, (void)fi;
	if (ff_kind(path) != FF_DATA)
		return 0;
	return fdatasync(ff_fd) ? -errno : 0;
}

static int ff_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	return fstatvfs(ff_fd, sv) ? -errno : 0;
}

static const struct fuse_operations ff_ops = {
	.init = ff_init,
	.getattr = ff_getattr,
	.readdir = ff_readdir,
	.open = ff_open,
	.read = ff_read,
	.write = ff_write,
	.truncate = ff_truncate,
	.chmod = ff_chmod,
	.utimens = ff_utimens,
	.fallocate = ff_fallocate,
	.fsync = ff_fsync,
	.statfs = ff_statfs,
};

int main(int argc, char *argv[])
{
	char path[PATH_MAX];

	if (argc < 3) {
		fprintf(stderr, "usage: failfs DIR MOUNTPOINT [FUSE options]\n");
		return 1;
	}
	if (snprintf(path, sizeof(path), "%s/data", argv[1]) >= (int)sizeof(path)) {
		fprintf(stderr, "failfs: %s: name too long\n", argv[1]);
		return 1;
	}
	/* Absolute already or not: opened before libfuse may chdir("/"). */
	ff_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		     0600);
	if (ff_fd < 0) {
		perror(path);
		return 1;
	}
	argv[1] = argv[0];		/* drop DIR: libfuse sees the rest */
	return fuse_main(argc - 1, argv + 1, &ff_ops, NULL);
}
