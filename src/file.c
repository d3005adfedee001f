/*
 * Reading config and certificate files: regular files only, never a
 * blocking open. See include/zring/file.h.
 */
#include "zring/file.h"
#include "zring/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *file_type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return "a regular file";
	case S_IFDIR:
		return "a directory";
	case S_IFIFO:
		return "a FIFO";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	case S_IFSOCK:
		return "a socket";
	case S_IFLNK:
		return "a symbolic link";
	default:
		return "not a regular file";
	}
}

/* 0 for a regular file, else its refusal. */
static int check_type(mode_t mode, char *why, size_t why_len)
{
	if (S_ISREG(mode))
		return 0;
	if (S_ISDIR(mode))
		return why_fail(-EISDIR, why, why_len, "is a directory");
	return why_fail(-EINVAL, why, why_len, "is %s, not a regular file", file_type_name(mode));
}

static int too_big(size_t max, char *why, size_t why_len)
{
	return why_fail(-EFBIG, why, why_len, "is larger than the limit of %zu bytes", max);
}

/* Wait until a non-blocking fd has something to read (or its end). */
static int wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;
	while ((r = poll(&p, 1, -1)) < 0 && errno == EINTR)
		;
	return r < 0 ? -errno : 0;
}

/* Read fd to its end into a buffer of `cap` bytes to start with (grown
 * as needed), refusing more than max bytes. */
static int read_all(int fd, size_t cap, size_t max, char **bufp, size_t *lenp, char *why,
		    size_t why_len)
{
	size_t len = 0;
	char *buf = malloc(cap + 1);
	int err = 0;

	while (buf) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    (err = wait_readable(fd)) == 0)
			continue;
		if (n < 0 && !err)
			err = -errno;
		if (err < 0) {
			err = why_fail(err, why, why_len, "cannot read: %s", strerror(-err));
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			err = too_big(max, why, why_len);
			break;
		}
		if (len == cap) {
			/* Grown while we read (or a stream): up to max + 1,
			 * enough to tell "too big" apart. */
			size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			char *nb = realloc(buf, ncap + 1);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap = ncap;
		}
	}
	if (!buf)
		return why_fail(-ENOMEM, why, why_len, "out of memory");
	if (err < 0) {
		free(buf);
		return err;
	}
	buf[len] = '\0';
	*bufp = buf;
	*lenp = len;
	return 0;
}

int file_read_fd(int fd, size_t max, char **buf, size_t *len, char *why, size_t why_len)
{
	return read_all(fd, max < 65536 ? max + 1 : 65536, max, buf, len, why, why_len);
}

int file_read(const char *path, size_t max, char **buf, size_t *len, char *why, size_t why_len)
{
	struct stat st;
	int err, fd;

	/* Look before opening: a device is never opened (opening one can
	 * have effects of its own), a FIFO never waited on. */
	if (stat(path, &st) < 0)
		return why_fail(-errno, why, why_len, "cannot open: %s", strerror(errno));
	if ((err = check_type(st.st_mode, why, why_len)) < 0)
		return err;
	/* It may be swapped for something else before open(2): O_NONBLOCK
	 * keeps a FIFO's open from waiting for a writer, O_NOCTTY keeps a
	 * terminal from becoming ours, and fstat tells what we really got. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return why_fail(-errno, why, why_len, "cannot open: %s", strerror(errno));
	if (fstat(fd, &st) < 0)
		err = why_fail(-errno, why, why_len, "cannot stat: %s", strerror(errno));
	else
		err = check_type(st.st_mode, why, why_len);
	if (err == 0 && (uint64_t)st.st_size > max)
		err = too_big(max, why, why_len);
	/* A regular file: blocking reads, as for any file. */
	if (err == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		err = why_fail(-errno, why, why_len, "cannot read: %s", strerror(errno));
	if (err == 0)
		err = read_all(fd, st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, max, buf, len,
			       why, why_len);
	close(fd);
	return err;
}
