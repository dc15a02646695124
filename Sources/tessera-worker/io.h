/*
 * io.h - the worker's conventions for system calls, memory and diagnostics.
 *
 * This file exists so that the worker's one errno policy is written down
 * once and used everywhere: a call that fails with EINTR is issued again
 * (RETRY), and nothing else is retried silently. close() is the single
 * exception: Linux releases the descriptor even when close() reports EINTR,
 * so retrying it could close a descriptor that was opened in the meantime.
 *
 * Out of memory in the zygote or in describe mode is fatal (xmalloc and
 * friends exit): the daemon restarts a worker that dies. Code that runs in a
 * microtask's child under a memory limit uses plain malloc and reports
 * failure instead.
 */
#ifndef TESSERA_WORKER_IO_H
#define TESSERA_WORKER_IO_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Evaluates `expression` (a system call returning -1 on failure) until it
 * does not fail with EINTR, and yields its last result as a long. */
#define RETRY(expression)                                                   \
    __extension__({                                                         \
        long retry_result_;                                                 \
        do {                                                                \
            retry_result_ = (long)(expression);                             \
        } while (retry_result_ == -1L && errno == EINTR);                   \
        retry_result_;                                                      \
    })

/* Writes all `length` bytes to `fd`, which must be blocking. Returns 0, or
 * -1 with errno set. Async-signal-safe. */
int io_write_all(int fd, const void *data, size_t length);

/* Writes every byte of the `count` buffers in `iov` (which it modifies) to
 * the blocking `fd` with as few system calls as possible. Returns 0, or -1
 * with errno set. */
int io_writev_all(int fd, struct iovec *iov, int count);

/* The entries of the directory open as `fd` but "." and "..", read from its
 * start, or UINT32_MAX when it cannot be read. */
uint32_t io_count_entries(int fd);

/* Writes "tessera-worker[pid]: <message>\n" to standard error in one call. */
void worker_log(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* Allocation that cannot fail: on exhaustion it logs and exits with 1. */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *pointer, size_t size);
char *xstrdup(const char *string);
char *xasprintf(const char *format, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *format, va_list arguments) __attribute__((format(printf, 1, 0)));

#endif /* TESSERA_WORKER_IO_H */
