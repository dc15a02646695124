/*
 * host.h - the tessera_host table the worker gives plugins, and the
 * microtask (struct tessera_task) an executor works on.
 *
 * The table is used in two places: by the loader, which passes it to each
 * plugin's entry point (where only `log` with a NULL task makes sense), and
 * by a microtask's child, which passes it to the executor together with the
 * task built here from the stage definition and the TASK frame.
 */
#ifndef TESSERA_WORKER_HOST_H
#define TESSERA_WORKER_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tessera/plugin.h>

#include "stage.h"

extern const tessera_host host_table;

/* Names the plugin file whose entry point is running, so that host->log()
 * with a NULL task can say who is talking; NULL outside the entry point. */
void host_set_loading_plugin(const char *path);

/* The microtask as the executor sees it. Lives in the child only. */
struct tessera_task {
    const struct stage *stage;
    const char *item;
    uint64_t index;
    /* Per parameter, its values after {{item}} substitution; NULL until the
     * executor first asks for the parameter. */
    const char *const **resolved;
    /* The longest result kept; longer ones are cut and marked truncated. */
    size_t result_limit;
    unsigned char *result;
    size_t result_length;
    bool has_result;
    bool result_truncated;
    /* The last fraction sent to the zygote, to skip redundant reports. */
    bool progress_sent;
    double progress_last;
};

/* Prepares `task`; `item` is copied. Returns 0, or -1 when out of memory. */
int host_task_init(struct tessera_task *task, const struct stage *stage, const char *item,
                   size_t item_length, uint64_t index, size_t result_limit);

/* Sends the result, if the executor set one, on the child's channel.
 * Returns 0, or -1 with errno set. */
int host_task_send_result(const struct tessera_task *task);

#endif /* TESSERA_WORKER_HOST_H */
