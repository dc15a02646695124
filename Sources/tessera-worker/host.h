/*
 * host.h - the tessera_host table the worker gives plugins, and the
 * microtask (struct tessera_task) an executor works on.
 *
 * The table is used in two places: by the loader, which passes it to each
 * plugin's entry point (where only `log` with a NULL task makes sense), and
 * by a microtask's child, which passes it to the executor together with the
 * task built here from the stage definition and the TASK frame.
 *
 * Parameters reach the executor with their templates replaced ({{item}},
 * {{index}}, {{run}}, {{job}}, {{stage}}, {{attempt}}, {{input}},
 * {{run_dir}}, a key of an item that is a JSON object, and {{items}}, which
 * a list element of its own expands to the members of a chunk): see
 * plugin.h for what each stands for.
 */
#ifndef TESSERA_WORKER_HOST_H
#define TESSERA_WORKER_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tessera/plugin.h>

#include "item_json.h"
#include "stage.h"

extern const tessera_host host_table;

/* Names the plugin file whose entry point is running, so that host->log()
 * with a NULL task can say who is talking; NULL outside the entry point. */
void host_set_loading_plugin(const char *path);

/* A parameter's values with their templates replaced: `values` is NULL
 * until the executor first asks for the parameter. A list may have more or
 * fewer elements than the stage gives it, as {{items}} expands. */
struct resolved_param {
    const char *const *values;
    size_t count;
};

/* The item read as JSON (item_json.h), the first time a template or a host
 * function looks into it. */
struct item_view {
    bool scanned;
    int kind; /* enum item_json_kind */
    struct item_json_error error;
    struct item_json_member *members;
    size_t count;
    /* Per member, its text (item_json_value_text()) once asked for. */
    char **texts;
    size_t *text_lengths;
};

/* The microtask as the executor sees it. Lives in the child only. */
struct tessera_task {
    const struct stage *stage;
    const char *item;
    size_t item_length; /* strlen(item): an item is text up to a NUL */
    uint64_t index;
    uint32_t attempt;
    /* The index, the run id and the attempt in decimal, as templates and
     * the environment give them. */
    char index_text[21];
    char run_text[21];
    char attempt_text[11];
    /* One per parameter of the stage. */
    struct resolved_param *resolved;
    struct item_view item_view;
    /* The longest result an executor may set; a longer one is discarded,
     * and reported as over the limit. */
    size_t result_limit;
    unsigned char *result;
    size_t result_length;
    bool has_result;
    bool result_over_limit;
    /* The last fraction sent to the zygote, to skip redundant reports. */
    bool progress_sent;
    double progress_last;
};

/* Prepares `task`; `item` is copied. Returns 0, or -1 when out of memory. */
int host_task_init(struct tessera_task *task, const struct stage *stage, const char *item,
                   size_t item_length, uint64_t index, uint32_t attempt, size_t result_limit);

/* The same, with the copy of the item and the task's own tables taken from
 * `allocate` (which returns NULL when it has no room): a stem's process
 * takes them from memory no other process touched, not from the heap it
 * shares with the stem, each page of which it would copy as it writes. */
int host_task_init_from(struct tessera_task *task, const struct stage *stage, const char *item,
                        size_t item_length, uint64_t index, uint32_t attempt, size_t result_limit,
                        void *(*allocate)(size_t size));

/* Writes `value` in decimal, NUL-terminated, to `text` (21 bytes or more). */
void host_format_u64(char *text, uint64_t value);

/* Sends the result, if the executor set one (and the stage's result is the
 * executor's, not its standard output), on the child's channel. Returns 0,
 * or -1 with errno set. */
int host_task_send_result(const struct tessera_task *task);

#endif /* TESSERA_WORKER_HOST_H */
