/*
 * io.c - full writes, the worker's own diagnostics and fatal allocation.
 *
 * See io.h for the policies these helpers implement.
 */
#define _GNU_SOURCE
#include "io.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int io_write_all(int fd, const void *data, size_t length)
{
    const char *cursor = data;
    while (length > 0) {
        ssize_t written = RETRY(write(fd, cursor, length));
        if (written == -1)
            return -1;
        cursor += written;
        length -= (size_t)written;
    }
    return 0;
}

int io_writev_all(int fd, struct iovec *iov, int count)
{
    while (count > 0) {
        ssize_t written = RETRY(writev(fd, iov, count));
        if (written == -1)
            return -1;
        /* Skip the buffers that were written completely, then advance into
         * the first one that was written partly. */
        size_t left = (size_t)written;
        while (count > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

void worker_log(const char *format, ...)
{
    /* The line is assembled first so that it reaches standard error in one
     * write, unmixed with other processes' output; long messages are cut. */
    char line[1024];
    size_t room = sizeof line - 1; /* one byte is kept for the newline */
    int prefix = snprintf(line, room, "tessera-worker[%ld]: ", (long)getpid());
    size_t length = (size_t)prefix;
    va_list arguments;
    va_start(arguments, format);
    int body = vsnprintf(line + length, room - length, format, arguments);
    va_end(arguments);
    if (body > 0)
        length += (size_t)body < room - length ? (size_t)body : room - length - 1;
    line[length++] = '\n';
    /* A diagnostic that cannot be written has nowhere else to go. */
    (void)io_write_all(STDERR_FILENO, line, length);
}

static void *checked(void *pointer)
{
    if (pointer == NULL) {
        worker_log("out of memory");
        exit(EXIT_FAILURE);
    }
    return pointer;
}

void *xmalloc(size_t size)
{
    return checked(malloc(size ? size : 1));
}

void *xcalloc(size_t count, size_t size)
{
    return checked(calloc(count ? count : 1, size ? size : 1));
}

void *xrealloc(void *pointer, size_t size)
{
    return checked(realloc(pointer, size ? size : 1));
}

char *xstrdup(const char *string)
{
    return checked(strdup(string));
}

char *xasprintf(const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    char *text = xvasprintf(format, arguments);
    va_end(arguments);
    return text;
}

char *xvasprintf(const char *format, va_list arguments)
{
    char *text = NULL;
    return checked(vasprintf(&text, format, arguments) < 0 ? NULL : text);
}

/* What getdents64 returns (glibc's struct dirent64 is the same record, but
 * <dirent.h> promises no layout for it). */
struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

uint32_t io_count_entries(int fd)
{
    if (lseek(fd, 0, SEEK_SET) == -1)
        return UINT32_MAX;
    uint32_t count = 0;
    char buffer[4096] __attribute__((aligned(8)));
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buffer, sizeof buffer);
        if (got == -1 && errno == EINTR)
            continue;
        if (got == -1)
            return UINT32_MAX;
        if (got == 0)
            return count;
        for (long offset = 0; offset < got;) {
            const struct linux_dirent64 *entry = (const void *)(buffer + offset);
            if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
                count++;
            offset += entry->d_reclen;
        }
    }
}
