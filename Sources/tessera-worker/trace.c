/*
 * trace.c - the zygote's ptrace of microtasks (see trace.h).
 */
#define _GNU_SOURCE
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"

/* Set once ptrace was refused, so that it is logged once. */
static bool refused;

/* EXITKILL: a microtask never outlives a zygote that dies. TRACEEXIT: one
 * stop as it exits, while its memory still exists. */
#define MICROTASK_OPTIONS (PTRACE_O_EXITKILL | PTRACE_O_TRACEEXIT)

static void attach(struct trace *trace, pid_t pid, bool namespace_init, long options)
{
    *trace = (struct trace){.namespace_init = namespace_init};
    if (ptrace(PTRACE_SEIZE, pid, NULL, (void *)options) == 0) {
        trace->traced = true;
        return;
    }
    if ((errno == EPERM || errno == ENOSYS) && !refused) {
        worker_log("cannot trace microtasks (ptrace: %s): their reasons come from wait status "
                   "alone, and a microtask that is pid 1 of its namespace does not die of "
                   "signals it does not handle",
                   strerror(errno));
        refused = true;
    } else if (errno != ESRCH && errno != EPERM && errno != ENOSYS) {
        worker_log("ptrace of pid %ld: %s", (long)pid, strerror(errno));
    }
}

void trace_attach(struct trace *trace, pid_t pid, bool namespace_init)
{
    attach(trace, pid, namespace_init, MICROTASK_OPTIONS);
}

void trace_attach_stem(struct trace *trace, pid_t pid)
{
    attach(trace, pid, true, MICROTASK_OPTIONS | PTRACE_O_TRACEFORK);
}

void trace_adopt(struct trace *trace, pid_t pid, bool exit_stop)
{
    *trace = (struct trace){.traced = true};
    long options = exit_stop ? MICROTASK_OPTIONS : PTRACE_O_EXITKILL;
    if (ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)options) == -1 &&
        errno != ESRCH)
        worker_log("ptrace of pid %ld: %s", (long)pid, strerror(errno));
    trace_resume(pid);
}

void trace_resume(pid_t pid)
{
    if (ptrace(PTRACE_CONT, pid, NULL, NULL) == -1 && errno != ESRCH)
        worker_log("resuming pid %ld: %s", (long)pid, strerror(errno));
}

/* What /proc/<pid>/status says about signals and memory. */
struct process_status {
    uint64_t vm_peak;
    uint64_t caught; /* SigCgt: bit n-1 for signal n */
    uint64_t ignored; /* SigIgn */
    pid_t own_pid;    /* its pid in its own pid namespace (NSpid's last), or 0 */
    bool read;
};

static struct process_status read_status(pid_t pid)
{
    struct process_status status = {0};
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    int fd = (int)RETRY(open(path, O_RDONLY | O_CLOEXEC));
    if (fd == -1)
        return status;
    char text[4096];
    size_t length = 0;
    while (length < sizeof text - 1) {
        ssize_t got = RETRY(read(fd, text + length, sizeof text - 1 - length));
        if (got <= 0)
            break;
        length += (size_t)got;
    }
    close(fd);
    text[length] = '\0';
    status.read = length > 0;
    for (char *line = text; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (strncmp(line, "VmPeak:", 7) == 0)
            status.vm_peak = strtoull(line + 7, NULL, 10) * 1024;
        else if (strncmp(line, "SigCgt:", 7) == 0)
            status.caught = strtoull(line + 7, NULL, 16);
        else if (strncmp(line, "SigIgn:", 7) == 0)
            status.ignored = strtoull(line + 7, NULL, 16);
        else if (strncmp(line, "NSpid:", 6) == 0) {
            const char *last = strrchr(line, '\t');
            status.own_pid = (pid_t)strtol(last != NULL ? last + 1 : line + 6, NULL, 10);
        }
        line = next;
    }
    return status;
}

static void note_peak(struct trace *trace, uint64_t peak)
{
    if (peak > trace->vm_peak)
        trace->vm_peak = peak;
}

/* Signals whose default action is to do nothing, or to stop. */
static bool harmless_by_default(int signo)
{
    switch (signo) {
    case SIGCHLD:
    case SIGCONT:
    case SIGURG:
    case SIGWINCH:
        return true;
    default:
        return false;
    }
}

static bool stops_by_default(int signo)
{
    return signo == SIGSTOP || signo == SIGTSTP || signo == SIGTTIN || signo == SIGTTOU;
}

static void resume(pid_t pid, int signo)
{
    if (ptrace(PTRACE_CONT, pid, NULL, (void *)(long)signo) == -1 && errno != ESRCH)
        worker_log("resuming pid %ld: %s", (long)pid, strerror(errno));
}

/* A signal is about to be delivered to the traced process. */
static void signal_stop(struct trace *trace, pid_t pid, int signo)
{
    if (stops_by_default(signo)) {
        resume(pid, 0);
        return;
    }
    if (harmless_by_default(signo) || signo >= SIGRTMIN) {
        /* Real-time signals end a process by default too, but are sent
         * only by programs that handle them; they pass as they are. */
        resume(pid, signo);
        return;
    }
    struct process_status status = read_status(pid);
    uint64_t bit = 1ull << (signo - 1);
    if (!status.read || (status.caught & bit) || (status.ignored & bit)) {
        resume(pid, signo);
        return;
    }
    /* The default action ends the process. */
    siginfo_t info;
    memset(&info, 0, sizeof info);
    bool from_kernel = false;
    if (ptrace(PTRACE_GETSIGINFO, pid, NULL, &info) == 0) {
        /* Faults carry a positive code, RLIMIT_CPU's SIGXCPU SI_KERNEL; but
         * a process may queue itself a signal with any code
         * (rt_sigqueueinfo), so this is a hint the daemon checks against
         * what cannot be forged (SIGXCPU: the CPU time used). The SIGXFSZ
         * of RLIMIT_FSIZE is sent as if by the process itself (SI_USER,
         * its own pid, as its namespace numbers it), which only
         * kill(getpid(), SIGXFSZ) can imitate, so that form alone counts. A SIGSYS that is delivered never comes
         * from the sandbox, whose filter kills at once (no delivery). */
        pid_t own = status.own_pid != 0 ? status.own_pid : trace->namespace_init ? 1 : pid;
        if (signo == SIGXFSZ)
            from_kernel = info.si_code == SI_USER && info.si_pid == own;
        else if (signo != SIGSYS)
            from_kernel = info.si_code == SI_KERNEL || info.si_code > 0;
    }
    if (trace->fatal_signal == 0) {
        trace->fatal_signal = signo;
        trace->kernel_signal = from_kernel;
    }
    note_peak(trace, status.vm_peak);
    if (!trace->namespace_init) {
        resume(pid, signo);
        return;
    }
    /* SIGKILL ends a namespace's pid 1, and with it the namespace; it also
     * wakes the process from this stop. */
    if (kill(pid, SIGKILL) == -1 && errno != ESRCH)
        worker_log("killing pid %ld: %s", (long)pid, strerror(errno));
}

void trace_stopped(struct trace *trace, pid_t pid, int status)
{
    int event = status >> 16;
    int signo = WSTOPSIG(status);
    if (event == PTRACE_EVENT_EXIT) {
        unsigned long exit_status = 0;
        /* A failure: how much memory it held may be why. */
        if (ptrace(PTRACE_GETEVENTMSG, pid, NULL, &exit_status) == 0 && exit_status != 0)
            note_peak(trace, read_status(pid).vm_peak);
        resume(pid, 0);
        return;
    }
    if (event != 0) {
        /* A group stop (PTRACE_EVENT_STOP) or an event not asked for. */
        resume(pid, 0);
        return;
    }
    signal_stop(trace, pid, signo);
}
