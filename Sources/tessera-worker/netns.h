/*
 * netns.h - the empty network namespace microtasks without a network share.
 *
 * Creating a network namespace per microtask is costly (and so is its
 * teardown, which the kernel batches on a work queue), so the zygote makes
 * one, once, on the first stage that asks for `network: none`: it saves
 * its own namespace, unshares a new one, brings its loopback up, keeps a
 * descriptor of it and goes back. Each such microtask's child then only
 * joins it with setns(). What the microtasks share is a namespace with
 * nothing but `lo`: they can reach each other's loopback sockets (as
 * processes on one host can), and nothing else.
 */
#ifndef TESSERA_WORKER_NETNS_H
#define TESSERA_WORKER_NETNS_H

/* Returns a descriptor of the shared empty network namespace, creating it
 * on the first call. Returns -1 with a newly allocated reason in *error when
 * it cannot be made (a worker without CAP_SYS_ADMIN); a later call tries
 * again. */
int netns_shared(char **error);

/* Brings the loopback interface of the calling process's network namespace
 * up. Returns 0, or -1 with errno set. Used in the zygote for the shared
 * namespace, and in a child that made its own (see sandbox.c). */
int netns_loopback_up(void);

#endif /* TESSERA_WORKER_NETNS_H */
