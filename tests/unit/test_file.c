/*
 * Reading config and certificate files (src/file.c): regular files are
 * read whole; FIFOs, devices, sockets and directories (directly or behind
 * a symlink) are refused at once with their type named, and nothing
 * blocks. Tests that could hang before the fix carry a timeout.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "zring/file.h"

static char dir[] = "/tmp/zr-file-XXXXXX";

static void setup(void)
{
	strcpy(dir, "/tmp/zr-file-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

static const char *in_dir(const char *name)
{
	static char path[2][128];
	static int k;
	k ^= 1;
	snprintf(path[k], sizeof(path[k]), "%s/%s", dir, name);
	return path[k];
}

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(s, f);
	fclose(f);
}

/* file_read must refuse path with err and exactly this reason. */
static void expect_refused(const char *path, int err, const char *why)
{
	char *buf = (char *)0x1, msg[FILE_WHY_MAX];
	size_t len = 7;
	cr_assert_eq(file_read(path, 1 << 20, &buf, &len, msg, sizeof(msg)), err, "%s: %s",
		     path, msg);
	cr_assert_str_eq(msg, why, "%s", path);
	cr_assert_eq(buf, (char *)0x1, "the buffer is left alone on failure");
	cr_assert_eq(len, 7);
}

TestSuite(file, .init = setup, .fini = teardown, .timeout = 10);

Test(file, regular_file_read_whole)
{
	char *buf, msg[FILE_WHY_MAX];
	size_t len;
	write_file(in_dir("a.json"), "{\"workloads\": []}\n");
	cr_assert_eq(file_read(in_dir("a.json"), 1 << 20, &buf, &len, msg, sizeof(msg)), 0);
	cr_assert_eq(len, 18);
	cr_assert_str_eq(buf, "{\"workloads\": []}\n", "NUL-terminated");
	free(buf);
	/* An empty file is a file (the parser says what is wrong with it). */
	write_file(in_dir("empty"), "");
	cr_assert_eq(file_read(in_dir("empty"), 1 << 20, &buf, &len, NULL, 0), 0);
	cr_assert_eq(len, 0);
	free(buf);
}

Test(file, symlink_to_a_regular_file_is_followed)
{
	char *buf;
	size_t len;
	write_file(in_dir("real"), "x");
	cr_assert_eq(symlink(in_dir("real"), in_dir("link")), 0);
	cr_assert_eq(file_read(in_dir("link"), 16, &buf, &len, NULL, 0), 0);
	cr_assert_eq(len, 1);
	free(buf);
}

Test(file, fifo_without_writer_refused_at_once)
{
	cr_assert_eq(mkfifo(in_dir("fifo"), 0600), 0);
	expect_refused(in_dir("fifo"), -EINVAL, "is a FIFO, not a regular file");
}

Test(file, fifo_with_data_is_not_read)
{
	cr_assert_eq(mkfifo(in_dir("fifo"), 0600), 0);
	int rd = open(in_dir("fifo"), O_RDONLY | O_NONBLOCK);
	int wr = open(in_dir("fifo"), O_WRONLY);
	cr_assert(rd >= 0 && wr >= 0);
	cr_assert_eq(write(wr, "{}", 2), 2);
	expect_refused(in_dir("fifo"), -EINVAL, "is a FIFO, not a regular file");
	char two[2];
	cr_assert_eq(read(rd, two, 2), 2, "nothing was taken out of the FIFO");
	close(rd);
	close(wr);
}

Test(file, devices_refused_even_behind_symlinks)
{
	expect_refused("/dev/null", -EINVAL, "is a character device, not a regular file");
	cr_assert_eq(symlink("/dev/zero", in_dir("zero")), 0);
	expect_refused(in_dir("zero"), -EINVAL, "is a character device, not a regular file");
	cr_assert_eq(symlink(in_dir("zero"), in_dir("zero2")), 0);
	expect_refused(in_dir("zero2"), -EINVAL, "is a character device, not a regular file");
}

Test(file, socket_refused)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", in_dir("sock"));
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 1), 0);
	expect_refused(in_dir("sock"), -EINVAL, "is a socket, not a regular file");
	close(fd);
}

Test(file, directory_and_missing_file)
{
	expect_refused(dir, -EISDIR, "is a directory");
	expect_refused(in_dir("nothing"), -ENOENT, "cannot open: No such file or directory");
	write_file(in_dir("f"), "x");
	expect_refused(in_dir("f/below"), -ENOTDIR, "cannot open: Not a directory");
}

Test(file, size_limit)
{
	char *buf, msg[FILE_WHY_MAX];
	size_t len;
	write_file(in_dir("eight"), "12345678");
	cr_assert_eq(file_read(in_dir("eight"), 8, &buf, &len, NULL, 0), 0, "exactly the limit");
	cr_assert_eq(len, 8);
	free(buf);
	cr_assert_eq(file_read(in_dir("eight"), 7, &buf, &len, msg, sizeof(msg)), -EFBIG);
	cr_assert_str_eq(msg, "is larger than the limit of 7 bytes");
	/* Refused by its size, before a byte is read. */
	int fd = open(in_dir("huge"), O_CREAT | O_WRONLY, 0600);
	cr_assert_eq(ftruncate(fd, 1ll << 40), 0);
	close(fd);
	expect_refused(in_dir("huge"), -EFBIG, "is larger than the limit of 1048576 bytes");
}

Test(file, fd_reads_a_pipe_to_its_end)
{
	int p[2];
	char *buf, msg[FILE_WHY_MAX];
	size_t len;
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "hello", 5), 5);
	close(p[1]);
	cr_assert_eq(file_read_fd(p[0], 100, &buf, &len, msg, sizeof(msg)), 0);
	cr_assert_eq(len, 5);
	cr_assert_str_eq(buf, "hello");
	free(buf);
	close(p[0]);
	/* Over the limit. */
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "hello", 5), 5);
	close(p[1]);
	cr_assert_eq(file_read_fd(p[0], 4, &buf, &len, msg, sizeof(msg)), -EFBIG);
	cr_assert_str_eq(msg, "is larger than the limit of 4 bytes");
	close(p[0]);
}

static void *late_writer(void *arg)
{
	int fd = *(int *)arg;
	usleep(50000);
	cr_assert_eq(write(fd, "late", 4), 4);
	close(fd);
	return NULL;
}

/* A non-blocking stdin is waited on, not taken for its end. */
Test(file, fd_nonblocking_waits_for_data)
{
	int p[2];
	char *buf;
	size_t len;
	pthread_t t;
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	cr_assert_eq(pthread_create(&t, NULL, late_writer, &p[1]), 0);
	cr_assert_eq(file_read_fd(p[0], 100, &buf, &len, NULL, 0), 0);
	pthread_join(t, NULL);
	cr_assert_eq(len, 4);
	cr_assert_str_eq(buf, "late");
	free(buf);
	close(p[0]);
}
