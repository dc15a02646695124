/*
 * channel.h - the private channel from a microtask's child to the zygote.
 *
 * Each child gets the write end of a pipe as descriptor 3 (close-on-exec, so
 * programs an executor runs do not inherit it). The child writes small
 * frames on it: a header in the machine's byte order (both ends are the same
 * binary) followed by `length` bytes of payload:
 *
 *   CHANNEL_PROGRESS  f64 fraction
 *   CHANNEL_RESULT    u8 truncated (0 or 1), then the result bytes
 *   CHANNEL_PEAK      u64 VmPeak in bytes, sent when the executor returned
 *   CHANNEL_CRASH     u64 VmPeak in bytes, sent by the crash handler
 *   CHANNEL_SIGNAL    u64 signal number: the child is pid 1 of its own pid
 *                     namespace, where a signal it sends itself (abort(),
 *                     raise()) or the kernel's SIGXCPU cannot kill it; it
 *                     exits with 128 + that number instead, and the zygote
 *                     reports the microtask as killed by the signal
 *
 * The zygote treats the channel as untrusted (an executor can write to
 * descriptor 3 itself) and kills a task that sends anything else.
 */
#ifndef TESSERA_WORKER_CHANNEL_H
#define TESSERA_WORKER_CHANNEL_H

#include <stdint.h>

#define CHANNEL_FD 3

enum channel_type {
    CHANNEL_PROGRESS = 1,
    CHANNEL_RESULT = 2,
    CHANNEL_PEAK = 3,
    CHANNEL_CRASH = 4,
    CHANNEL_SIGNAL = 5
};

struct channel_header {
    uint32_t type;
    uint32_t length;
};

#endif /* TESSERA_WORKER_CHANNEL_H */
