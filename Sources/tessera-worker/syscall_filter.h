/*
 * syscall_filter.h - the seccomp programs of the sandbox.
 *
 * A stage names a syscall profile (TW_SYSCALLS_*) and lists of syscall
 * names to allow and to deny beyond it. The zygote compiles each distinct
 * (profile, allow list, deny list) once with libseccomp, exports it as
 * classic BPF and keeps that program in a small reference-counted cache,
 * so that a forked child only hands it to the kernel: no libseccomp work,
 * and no allocation, after fork.
 *
 * Both profiles kill the process on any architecture but the native one
 * (so 32-bit `int 0x80` calls and x32 calls die) and fail clone3 with
 * ENOSYS (libc then falls back to clone, whose flags a filter can see).
 *   DEFAULT  everything is allowed except the calls that reconfigure or
 *            inspect the kernel, other processes or the filesystem tree
 *            (mount family, namespaces, modules, kexec, ptrace, bpf, perf,
 *            keyrings, clocks, ...), which fail with EPERM; clone with any
 *            CLONE_NEW* flag and ioctl TIOCSTI/TIOCLINUX fail too, and
 *            personality() may only query or pick the Linux defaults.
 *   COMPUTE  only what a computation on its inputs needs: I/O on the
 *            descriptors it has, memory, signals, time, exit; everything
 *            else fails with EPERM.
 * Then the stage's allow list lifts the profile's rule for each name (or,
 * for COMPUTE, allows it), and its deny list makes each name fail with
 * EPERM. With profile NONE a filter exists only if the deny list is not
 * empty.
 */
#ifndef TESSERA_WORKER_SYSCALL_FILTER_H
#define TESSERA_WORKER_SYSCALL_FILTER_H

#include <stdint.h>

#include "stage.h"

struct syscall_filter;

/* Returns the filter of this combination, compiling it the first time, with
 * a reference the caller gives back with syscall_filter_release(). Returns
 * NULL when none is needed (profile NONE without denied names), or NULL
 * with a newly allocated reason in *error (an unknown syscall name, an
 * unknown profile, libseccomp failing). */
struct syscall_filter *syscall_filter_acquire(uint8_t profile, const struct stage_list *allow,
                                              const struct stage_list *deny, char **error);

/* Gives back a reference; the program is freed with the last one. NULL is
 * ignored. */
void syscall_filter_release(struct syscall_filter *filter);

/* In a microtask's child, as its last step before the executor: installs
 * the program. no_new_privs must be set already. Returns 0, or -1 with
 * errno set. Does not allocate. */
int syscall_filter_load(const struct syscall_filter *filter);

/* The number of BPF instructions of the program (for diagnostics). */
unsigned syscall_filter_length(const struct syscall_filter *filter);

#endif /* TESSERA_WORKER_SYSCALL_FILTER_H */
