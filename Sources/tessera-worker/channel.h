/*
 * channel.h - the private channel between a microtask's child and the
 * zygote.
 *
 * Each child gets one end of a Unix stream socket pair as descriptor 3
 * (close-on-exec, so programs an executor runs do not inherit it).
 *
 * Zygote to child: one byte, CHANNEL_GO, once the zygote is tracing the
 * child (trace.h). The child reads it right before it calls the executor,
 * so no executor code runs untraced.
 *
 * Child to zygote: small frames, a header in the machine's byte order
 * (both ends are the same binary) followed by `length` bytes of payload:
 *
 *   CHANNEL_PROGRESS  f64 fraction
 *   CHANNEL_RESULT    u8 over_limit (0 or 1), then the result bytes; 1
 *                     when the executor's result was longer than the
 *                     stage's result limit, and none follow (a stage whose
 *                     result is its standard output sends no result)
 *   CHANNEL_ERROR     the text of the executor's last host->log() at error
 *                     level (at most CHANNEL_ERROR_MAX bytes)
 *   CHANNEL_PERMANENT host->fail_permanently(): its reason, like
 *                     CHANNEL_ERROR's text (it may be empty)
 *
 *   CHANNEL_POOL_DONE (a pooled process only, isolation: pooled) struct
 *                     channel_pool_done: how its microtask ended, in its
 *                     own words (its executor's return value), and what it
 *                     used
 *
 * Zygote to a pooled process, for each microtask after its first: a
 * struct channel_pool_task, then item_length bytes of item. Its standard
 * output and error are the same two pipes for all its microtasks: what a
 * microtask wrote is in them before it reports its end (CHANNEL_POOL_DONE),
 * so the zygote reads them empty then, and the rest is the next one's.
 *
 * Nothing on this channel says how a microtask ended: the cause of its
 * end (wait status, signals, rusage, peak address space) is what the
 * kernel tells the zygote, which an executor cannot write; but for a
 * pooled process's microtasks that did not end it, which only
 * CHANNEL_POOL_DONE tells (and which the daemon reports as such). The channel is
 * the executor's to abuse (it can write to descriptor 3 itself), so the
 * zygote kills a task that sends anything else and records why.
 */
#ifndef TESSERA_WORKER_CHANNEL_H
#define TESSERA_WORKER_CHANNEL_H

#include <stdint.h>

#define CHANNEL_FD 3

#define CHANNEL_GO 'g'

/* The longest error line kept. */
#define CHANNEL_ERROR_MAX 1024

enum channel_type {
    CHANNEL_PROGRESS = 1,
    CHANNEL_RESULT = 2,
    CHANNEL_ERROR = 3,
    CHANNEL_PERMANENT = 4,
    CHANNEL_POOL_DONE = 5,
    CHANNEL_STEM_DONE = 6
};

struct channel_header {
    uint32_t type;
    uint32_t length;
};

struct channel_pool_task {
    uint64_t index;
    uint32_t attempt;
    uint32_t item_length;
};

struct channel_pool_done {
    int32_t exit_code;
    uint32_t last; /* 1: the process ends now (it runs no more microtasks) */
    uint64_t cpu_us;      /* its own and its reaped descendants', since the last */
    uint64_t max_rss_kib; /* the process's peak so far */
};

/* A stem (isolation: process, child.c's stem_loop) has a second socket,
 * its control, which its microtasks' processes never hold (they close it
 * as they start): on it the stem sends CHANNEL_STEM_DONE, a struct
 * channel_stem_done, once a microtask's process and everything it left
 * running are gone. The microtask's own frames (result, progress, errors)
 * are on descriptor 3 as for any other; the stem's processes after its
 * first are forked ahead of their microtask and read its struct
 * channel_pool_task and item there first, as a pooled process does, then
 * a struct channel_stem_context and its four strings (job, stage, run
 * directory, input; not NUL-terminated): the microtask's run, which is not
 * always the stem's first (a stem may serve the same stage of a later run
 * of its job, see zygote.c). */
#define STEM_CONTROL_FD 4

struct channel_stem_context {
    uint64_t run_id;
    uint32_t lengths[4];
};

struct channel_stem_done {
    int32_t status;     /* the wait status of the microtask's process */
    int32_t fork_error; /* errno of a fork() that failed, or 0 */
    uint32_t last;      /* 1: the stem ends now (something was left behind) */
    uint32_t reserved;
};

#endif /* TESSERA_WORKER_CHANNEL_H */
