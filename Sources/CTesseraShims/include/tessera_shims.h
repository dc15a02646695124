/*
 * tessera_shims.h - system calls Swift cannot make itself (variadic
 * syscall(2), no libc wrapper), as small functions for the daemon.
 */
#ifndef TESSERA_SHIMS_H
#define TESSERA_SHIMS_H

/* The Landlock ABI version the kernel offers, or 0 when it has none. */
int tessera_landlock_abi(void);

/* The credentials of a Unix socket's peer (SO_PEERCRED): 0, or -1 with
 * errno set. */
int tessera_peer_credentials(int fd, int *pid, unsigned int *uid, unsigned int *gid);

/* Sends one entry to the journal (sd_journal_send(3)) with PRIORITY=,
 * MESSAGE= and, when not NULL, TESSERA_JOB=, TESSERA_RUN=, TESSERA_TASK=,
 * and SYSLOG_IDENTIFIER=tesserad. Returns 0 or a negative errno. */
int tessera_journal_send(int priority, const char *message, const char *job, const char *run,
                         const char *task);

#endif /* TESSERA_SHIMS_H */
