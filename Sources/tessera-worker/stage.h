/*
 * stage.h - stage definitions as the zygote keeps them.
 *
 * A STAGE frame tells the worker which executor a stage runs, its resource
 * limits and its parameters. The zygote decodes it once into a `struct
 * stage` held in a single allocation, with every string NUL-terminated, so
 * that a forked child can hand those strings to the executor directly: the
 * child reads the definition from its copy of the zygote's memory.
 */
#ifndef TESSERA_WORKER_STAGE_H
#define TESSERA_WORKER_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include <tessera/plugin.h>

#include "wire.h"

/* Limits of one microtask; 0 means "no limit" (leave the worker's own). */
struct stage_limits {
    uint64_t cpu_ms;
    uint64_t memory_bytes;
    uint64_t open_files;
    uint64_t processes;
    uint64_t file_size_bytes;
    uint64_t output_bytes;
};

/* One parameter as the job set it (or as its declared default). Scalars
 * have one value; lists one per element; maps key, value, key, value... */
struct stage_param {
    const char *name;
    tessera_param_type type;
    uint32_t value_count;
    const char *const *values;
};

struct stage {
    uint32_t id;
    const char *executor_name;
    /* The executor of a loaded plugin, or NULL when none provides it (its
     * tasks then fail without running). Filled in by the zygote. */
    const tessera_executor *executor;
    struct stage_limits limits;
    uint32_t param_count;
    const struct stage_param *params;
};

/* Decodes the fields of a STAGE frame. Returns NULL when the frame is
 * malformed (truncated, trailing bytes, unknown parameter type, or a value
 * count that does not fit the type). Free the result with free(). */
struct stage *stage_decode(struct wire_reader *reader);

/* The stages the daemon has defined, by id. A worker holds a handful at a
 * time (the stages of the runs in flight), so a plain array is searched. */
struct stage_table {
    struct stage **stages;
    size_t count;
    size_t capacity;
};

/* Adds `stage`, replacing and freeing any earlier definition of its id. */
void stage_table_put(struct stage_table *table, struct stage *stage);
struct stage *stage_table_find(const struct stage_table *table, uint32_t id);
/* Frees the definition of `id`; unknown ids are ignored. */
void stage_table_forget(struct stage_table *table, uint32_t id);

#endif /* TESSERA_WORKER_STAGE_H */
