/*
 * stage.h - stage definitions as the zygote keeps them.
 *
 * A STAGE frame tells the worker which executor a stage runs, its resource
 * limits and its parameters. The zygote decodes it once into a `struct
 * stage` held in a single allocation, with every string NUL-terminated, so
 * that a forked child can hand those strings to the executor directly: the
 * child reads the definition from its copy of the zygote's memory. That
 * allocation is not inherited by children (wiped.h) unless lent for the
 * fork of one of the stage's own microtasks: no executor sees the
 * parameters or environment of another stage.
 *
 * The sandbox fields of the frame are decoded into the same allocation,
 * whether or not TW_SANDBOX_ENABLED is set (the daemon always sends them;
 * without the flag nothing of them is applied). What the zygote derives
 * from them once per stage (the seccomp program, the order of the mounts,
 * a reason the stage cannot run) is in `sandbox`, see sandbox.h.
 *
 * The frame ends with what the stage's result is (the executor's, or its
 * standard output) and where the stage belongs (run, job, stage name, run
 * directory, reduce input), which the executor, the templates of its
 * parameters and its environment are given.
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
    /* cgroup cpu.max, in percent of one CPU; applied only in a cgroup with
     * the cpu controller (cgroup.h). */
    uint64_t cpu_quota_percent;
};

/* One parameter as the job set it (or as its declared default). Scalars
 * have one value; lists one per element; maps key, value, key, value... */
struct stage_param {
    const char *name;
    tessera_param_type type;
    uint32_t value_count;
    const char *const *values;
};

/* A list of strings of a STAGE frame, NULL-terminated (items[count] is
 * NULL), so the environment can become `environ` as it is. */
struct stage_list {
    uint32_t count;
    const char *const *items;
};

/* The sandbox fields of a STAGE frame (tessera_wire.h). */
struct stage_sandbox {
    uint32_t flags; /* TW_SANDBOX_* */
    uint32_t uid;   /* TW_ID_UNCHANGED: keep the worker's */
    uint32_t gid;
    uint8_t syscalls; /* TW_SYSCALLS_* */
    uint64_t tmp_size; /* bytes of the private /tmp */
    struct stage_list read_only;
    struct stage_list writable;
    struct stage_list hidden;
    struct stage_list allow_syscalls;
    struct stage_list deny_syscalls;
    struct stage_list environment; /* "NAME=value" each */
};

/* What a stage's result is (tessera_wire.h). */
struct stage_result {
    uint8_t source; /* TW_RESULT_* */
    uint64_t limit; /* bytes; 0 means TW_OUTPUT_CAP */
};

/* Where a stage belongs. The strings are "" when there is none. */
struct stage_context {
    uint64_t run_id;
    const char *job_name;
    const char *stage_name;
    const char *run_dir;
    const char *input_path; /* the input file of a reduce stage */
};

struct sandbox_plan;

struct stage {
    uint32_t id;
    /* The size of the allocation the stage lives in (wiped.h). */
    size_t allocation;
    const char *executor_name;
    /* The executor of a loaded plugin, or NULL when none provides it (its
     * tasks then fail without running). Filled in by the zygote. */
    const tessera_executor *executor;
    struct stage_limits limits;
    uint32_t param_count;
    const struct stage_param *params;
    struct stage_sandbox sandbox;
    struct stage_result result;
    struct stage_context context;
    /* isolation: pooled (pool.h): how many microtasks a pooled process
     * runs before it is replaced; 0 for a process per microtask. */
    uint32_t pool_recycle_after;
    /* The frame's bytes from the executor's name to the result's limit:
     * everything but the stage's id and context. Two runs' stages with the
     * same bytes, job and stage name are the same stage of the same job,
     * unchanged: a stem may serve the one after the other (zygote.c). In
     * the stage's allocation. */
    const unsigned char *definition;
    size_t definition_length;
    /* What the zygote prepared for the sandbox (sandbox_prepare()): NULL
     * until then, and for stages without TW_SANDBOX_ENABLED. Owned by the
     * stage; released with it. */
    struct sandbox_plan *plan;
};

/* Decodes the fields of a STAGE frame. Returns NULL when the frame is
 * malformed (truncated, trailing bytes, unknown parameter type, a value
 * count that does not fit the type, or an unknown result source). Free the
 * result with stage_free(). */
struct stage *stage_decode(struct wire_reader *reader);

/* Whether `stage` has this definition (see struct stage), job and stage
 * name. */
bool stage_same_definition(const struct stage *stage, const unsigned char *definition, size_t length,
                           const char *job_name, const char *stage_name);

/* Frees a stage and what the zygote prepared for it. */
void stage_free(struct stage *stage);

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
