/*
 * wiped.h - memory the zygote's children do not inherit.
 *
 * A microtask's process is a fork of the zygote, so it starts with a copy
 * of everything the zygote holds: every stage definition (parameters and
 * sandbox environment values of other jobs), the frames exchanged with the
 * daemon, and the output and results of other microtasks waiting to be
 * sent. An executor could read all of it from its own memory. Everything of
 * the kind is therefore kept in mappings marked MADV_WIPEONFORK: a child
 * sees them as zeros, at no cost to the fork (the pages are not even
 * copied). The one definition a child needs, its own stage's, is lent to
 * it for the duration of the fork with wiped_lend().
 *
 * Allocations are whole pages; they suit buffers and definitions, not
 * small objects.
 */
#ifndef TESSERA_WORKER_WIPED_H
#define TESSERA_WORKER_WIPED_H

#include <stdbool.h>
#include <stddef.h>

/* Checks once, in the zygote, that the kernel wipes such memory in a
 * child (Linux 4.14); logs when it does not. */
bool wiped_supported(void);

/* A zeroed allocation of at least `size` bytes (fatal on exhaustion). The
 * usable size, a whole number of pages, is stored in *capacity. */
void *wiped_alloc(size_t size, size_t *capacity);

/* Grows or shrinks an allocation of wiped_alloc(), keeping its contents up
 * to the smaller size; `*capacity` is updated. */
void *wiped_resize(void *memory, size_t old_capacity, size_t size, size_t *capacity);

void wiped_free(void *memory, size_t capacity);

/* While `lent` is true, the next fork copies this allocation into the
 * child as usual; set it back to false right after the fork. */
void wiped_lend(void *memory, size_t capacity, bool lent);

#endif /* TESSERA_WORKER_WIPED_H */
