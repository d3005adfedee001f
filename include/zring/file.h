/*
 * Reading the files zring loads from disk: the workload config, the
 * certificate chains, keys and the trust bundle.
 *
 * Those paths come from directories that other programs write (a
 * ConfigMap volume, a cert-manager Secret, a human with mkfifo), so
 * anything may sit there. Only a regular file (symlinks followed) is ever
 * read. Anything else (a FIFO, a character or block device, a socket, a
 * directory) is refused at once with a message that names its type: a
 * FIFO with no writer would block open(2) forever, and /dev/zero would be
 * read until the size limit. The file is stat'ed before it is opened (a
 * device is never opened at all), then opened with O_NONBLOCK | O_NOCTTY,
 * and checked again with fstat, so a swap between the two cannot block or
 * read a device either.
 */
#ifndef ZRING_FILE_H
#define ZRING_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* Room for any message file_read writes (path not included). */
#define FILE_WHY_MAX 160

/*
 * Read the regular file at `path` whole. Returns 0 with *buf (malloc'd,
 * with a NUL after the *len bytes; the caller frees it), or a negative
 * errno with a one-line reason in why[why_len] (when why is not NULL),
 * e.g. "is a FIFO, not a regular file":
 *   -EINVAL  not a regular file (FIFO, device, socket...)
 *   -EISDIR  a directory
 *   -EFBIG   more than `max` bytes (checked before reading, and again if
 *            the file grows while it is read)
 *   -ENOMEM, or open(2)'s, fstat(2)'s or read(2)'s error (-ENOENT, -EACCES...)
 * Never blocks on anything but the disk.
 */
int file_read(const char *path, size_t max, char **buf, size_t *len, char *why,
	      size_t why_len);

/*
 * Read an already open descriptor to its end, whatever it is (a pipe on
 * stdin, say: the caller chose it), at most `max` bytes. Same returns as
 * file_read; a non-blocking descriptor is waited on with poll(2).
 */
int file_read_fd(int fd, size_t max, char **buf, size_t *len, char *why, size_t why_len);

/* "a FIFO", "a character device", "a socket"... for st_mode's type. */
const char *file_type_name(mode_t mode);

#endif
