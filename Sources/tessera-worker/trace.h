/*
 * trace.h - what the kernel says about a microtask's main process, read by
 * the zygote through ptrace.
 *
 * The zygote attaches to every microtask's process as it creates it
 * (PTRACE_SEIZE, before any executor code runs: see channel.h) and so
 * learns from the kernel, not from the microtask:
 *   - every signal delivered to it, with the kernel's siginfo (who sent
 *     it: the kernel for a fault or a resource limit, or a process);
 *   - its peak address space (VmPeak, read from /proc by the zygote) at the
 *     moment a fatal signal arrives and when it exits with a failure;
 *   - the disposition of the signal (caught, ignored or default).
 *
 * With a pid namespace the process is the namespace's pid 1, which the
 * kernel spares every signal it does not handle but SIGKILL, even those it
 * sends itself (abort(), raise()) and the kernel's own SIGXCPU. The zygote
 * does what the default action would have done to any other process: it
 * records the signal and kills the microtask, which is then reported as
 * killed by that signal. Signals the process handles or ignores are passed
 * on untouched; stop signals are discarded (a microtask has no job
 * control).
 *
 * Only the main thread is traced: a signal directed at another thread of
 * a multithreaded executor that is pid 1 follows the kernel's rule for pid
 * 1. Where ptrace is not allowed (a Yama policy), the zygote logs it once
 * and reports what wait4() says.
 */
#ifndef TESSERA_WORKER_TRACE_H
#define TESSERA_WORKER_TRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct trace {
    bool traced;
    /* The process is pid 1 of its own pid namespace. */
    bool namespace_init;
    /* A signal whose default action ends the process, as the kernel
     * delivered it; 0 if none. */
    int fatal_signal;
    /* The kernel itself sent it (a fault, a resource limit), not a process. */
    bool kernel_signal;
    /* The largest VmPeak the zygote read, in bytes; 0 if never read. */
    uint64_t vm_peak;
};

/* Attaches to a freshly created microtask's process. */
void trace_attach(struct trace *trace, pid_t pid, bool namespace_init);

/* Attaches to a stem (child.c's stem_loop) so that each process it forks,
 * a microtask's, is traced from its first instruction: the kernel stops
 * the stem at the fork (PTRACE_EVENT_FORK) and the new process before it
 * runs (PTRACE_EVENT_STOP), which trace_adopt() then lets go, traced as a
 * microtask's process is, but not following its own forks. */
void trace_attach_stem(struct trace *trace, pid_t pid);

/* Starts a stem's new process, stopped as it was created (see above).
 * Without `exit_stop` it does not stop as it exits: its peak address space
 * is of use only against a memory limit. */
void trace_adopt(struct trace *trace, pid_t pid, bool exit_stop);

/* Lets a process that stopped for a ptrace event go on. */
void trace_resume(pid_t pid);

/* Handles a ptrace stop of `pid` whose wait status is `status`: resumes
 * the process, with the signal or without it, or kills it (a fatal signal
 * reached a pid 1). */
void trace_stopped(struct trace *trace, pid_t pid, int status);

#endif /* TESSERA_WORKER_TRACE_H */
