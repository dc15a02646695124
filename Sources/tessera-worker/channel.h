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
 * Nothing on this channel says how the microtask ended: the cause of its
 * end (wait status, signals, rusage, peak address space) is what the
 * kernel tells the zygote, which an executor cannot write. The channel is
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
    CHANNEL_PERMANENT = 4
};

struct channel_header {
    uint32_t type;
    uint32_t length;
};

#endif /* TESSERA_WORKER_CHANNEL_H */
