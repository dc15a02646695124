/*
 * stage.c - decoding STAGE frames and the table of defined stages.
 *
 * A stage is decoded in two passes over the frame: the first validates it
 * and measures what it needs, the second copies it into one allocation laid
 * out as
 *
 *     struct stage | struct stage_param[param_count] |
 *     const char *values[all values, then each sandbox list and its NULL] |
 *     the strings, each NUL-terminated
 *
 * so that a definition is freed at once (stage_free() also releases what
 * the zygote prepared for it) and read by the child without any further
 * work. The allocation is wiped memory (wiped.h): a child sees only the
 * definition of its own stage, which the zygote lends it for the fork.
 */
#define _GNU_SOURCE
#include "stage.h"

#include <stdlib.h>
#include <string.h>

#include <tessera_wire.h>

#include "io.h"
#include "sandbox.h"
#include "wiped.h"

/* The string lists of the sandbox, in frame order. */
#define SANDBOX_LIST_COUNT 6
/* The strings of the stage's context: job, stage, run directory, input. */
#define CONTEXT_STRING_COUNT 4

/* What the first pass learns about a frame. */
struct stage_measure {
    uint32_t param_count;
    size_t value_count;
    size_t string_bytes;
    size_t definition_bytes; /* from the executor's name to the result's limit */
};

static bool value_count_fits(tessera_param_type type, uint32_t count)
{
    switch (type) {
    case TESSERA_PARAM_STRING:
    case TESSERA_PARAM_INTEGER:
    case TESSERA_PARAM_NUMBER:
    case TESSERA_PARAM_BOOLEAN:
        return count == 1;
    case TESSERA_PARAM_STRING_LIST:
        return true;
    case TESSERA_PARAM_STRING_MAP:
        return count % 2 == 0;
    }
    return false; /* not a type this worker knows */
}

static void skip_str(struct wire_reader *reader, size_t *string_bytes)
{
    uint32_t length;
    (void)wire_get_str(reader, &length);
    *string_bytes += (size_t)length + 1;
}

/* The first pass: checks the frame's structure and measures it. */
static bool measure(struct wire_reader reader, struct stage_measure *measure)
{
    *measure = (struct stage_measure){0};
    (void)wire_get_u32(&reader); /* stage id */
    const unsigned char *definition = reader.cursor;
    skip_str(&reader, &measure->string_bytes);
    for (int i = 0; i < 7; i++)
        (void)wire_get_u64(&reader); /* limits */
    measure->param_count = wire_get_u32(&reader);
    for (uint32_t p = 0; p < measure->param_count && !reader.malformed; p++) {
        skip_str(&reader, &measure->string_bytes);
        tessera_param_type type = (tessera_param_type)wire_get_u8(&reader);
        uint32_t count = wire_get_u32(&reader);
        if (!reader.malformed && !value_count_fits(type, count))
            return false;
        for (uint32_t v = 0; v < count && !reader.malformed; v++)
            skip_str(&reader, &measure->string_bytes);
        measure->value_count += count;
    }
    (void)wire_get_u32(&reader); /* sandbox flags */
    (void)wire_get_u32(&reader); /* uid */
    (void)wire_get_u32(&reader); /* gid */
    (void)wire_get_u8(&reader);  /* syscall profile */
    (void)wire_get_u64(&reader); /* tmp size */
    for (int list = 0; list < SANDBOX_LIST_COUNT && !reader.malformed; list++) {
        uint32_t count = wire_get_u32(&reader);
        for (uint32_t v = 0; v < count && !reader.malformed; v++)
            skip_str(&reader, &measure->string_bytes);
        measure->value_count += (size_t)count + 1; /* and the NULL */
    }
    uint8_t source = wire_get_u8(&reader);
    if (!reader.malformed && source != TW_RESULT_EXECUTOR && source != TW_RESULT_STDOUT)
        return false;
    (void)wire_get_u64(&reader); /* result limit */
    if (!reader.malformed)
        measure->definition_bytes = (size_t)(reader.cursor - definition);
    (void)wire_get_u64(&reader); /* run id */
    for (int i = 0; i < CONTEXT_STRING_COUNT; i++)
        skip_str(&reader, &measure->string_bytes);
    (void)wire_get_u32(&reader); /* pool recycle_after */
    return wire_reader_complete(&reader);
}

/* Copies the next string of the frame to `*strings` and NUL-terminates it. */
static const char *copy_str(struct wire_reader *reader, char **strings)
{
    uint32_t length;
    const char *bytes = wire_get_str(reader, &length);
    char *copy = *strings;
    memcpy(copy, bytes, length);
    copy[length] = '\0';
    *strings += (size_t)length + 1;
    return copy;
}

struct stage *stage_decode(struct wire_reader *reader)
{
    struct stage_measure size;
    if (!measure(*reader, &size))
        return NULL;

    size_t params_at = sizeof(struct stage);
    size_t values_at = params_at + size.param_count * sizeof(struct stage_param);
    size_t strings_at = values_at + size.value_count * sizeof(const char *);
    size_t definition_at = strings_at + size.string_bytes;
    size_t capacity;
    char *block = wiped_alloc(definition_at + size.definition_bytes, &capacity);
    struct stage *stage = (struct stage *)block;
    stage->allocation = capacity;
    struct stage_param *params = (struct stage_param *)(block + params_at);
    const char **values = (const char **)(block + values_at);
    char *strings = block + strings_at;

    stage->id = wire_get_u32(reader);
    memcpy(block + definition_at, reader->cursor, size.definition_bytes);
    stage->definition = (const unsigned char *)block + definition_at;
    stage->definition_length = size.definition_bytes;
    stage->executor_name = copy_str(reader, &strings);
    stage->executor = NULL;
    stage->limits.cpu_ms = wire_get_u64(reader);
    stage->limits.memory_bytes = wire_get_u64(reader);
    stage->limits.open_files = wire_get_u64(reader);
    stage->limits.processes = wire_get_u64(reader);
    stage->limits.file_size_bytes = wire_get_u64(reader);
    stage->limits.output_bytes = wire_get_u64(reader);
    stage->limits.cpu_quota_percent = wire_get_u64(reader);
    stage->param_count = wire_get_u32(reader);
    stage->params = params;
    for (uint32_t p = 0; p < stage->param_count; p++) {
        params[p].name = copy_str(reader, &strings);
        params[p].type = (tessera_param_type)wire_get_u8(reader);
        params[p].value_count = wire_get_u32(reader);
        params[p].values = values;
        for (uint32_t v = 0; v < params[p].value_count; v++)
            *values++ = copy_str(reader, &strings);
    }
    struct stage_sandbox *sandbox = &stage->sandbox;
    sandbox->flags = wire_get_u32(reader);
    sandbox->uid = wire_get_u32(reader);
    sandbox->gid = wire_get_u32(reader);
    sandbox->syscalls = wire_get_u8(reader);
    sandbox->tmp_size = wire_get_u64(reader);
    struct stage_list *lists[SANDBOX_LIST_COUNT] = {
        &sandbox->read_only,      &sandbox->writable,      &sandbox->hidden,
        &sandbox->allow_syscalls, &sandbox->deny_syscalls, &sandbox->environment,
    };
    for (int list = 0; list < SANDBOX_LIST_COUNT; list++) {
        lists[list]->count = wire_get_u32(reader);
        lists[list]->items = values;
        for (uint32_t v = 0; v < lists[list]->count; v++)
            *values++ = copy_str(reader, &strings);
        *values++ = NULL;
    }
    stage->result.source = wire_get_u8(reader);
    stage->result.limit = wire_get_u64(reader);
    struct stage_context *context = &stage->context;
    context->run_id = wire_get_u64(reader);
    context->job_name = copy_str(reader, &strings);
    context->stage_name = copy_str(reader, &strings);
    context->run_dir = copy_str(reader, &strings);
    context->input_path = copy_str(reader, &strings);
    stage->pool_recycle_after = wire_get_u32(reader);
    stage->plan = NULL;
    return stage;
}

bool stage_same_definition(const struct stage *stage, const unsigned char *definition, size_t length,
                           const char *job_name, const char *stage_name)
{
    return stage->definition_length == length && memcmp(stage->definition, definition, length) == 0 &&
           strcmp(stage->context.job_name, job_name) == 0 && strcmp(stage->context.stage_name, stage_name) == 0;
}

void stage_free(struct stage *stage)
{
    if (stage == NULL)
        return;
    sandbox_plan_free(stage->plan);
    wiped_free(stage, stage->allocation);
}

void stage_table_put(struct stage_table *table, struct stage *stage)
{
    for (size_t i = 0; i < table->count; i++) {
        if (table->stages[i]->id == stage->id) {
            stage_free(table->stages[i]);
            table->stages[i] = stage;
            return;
        }
    }
    if (table->count == table->capacity) {
        table->capacity = table->capacity ? table->capacity * 2 : 8;
        table->stages = xrealloc(table->stages, table->capacity * sizeof *table->stages);
    }
    table->stages[table->count++] = stage;
}

struct stage *stage_table_find(const struct stage_table *table, uint32_t id)
{
    for (size_t i = 0; i < table->count; i++) {
        if (table->stages[i]->id == id)
            return table->stages[i];
    }
    return NULL;
}

void stage_table_forget(struct stage_table *table, uint32_t id)
{
    for (size_t i = 0; i < table->count; i++) {
        if (table->stages[i]->id == id) {
            stage_free(table->stages[i]);
            table->stages[i] = table->stages[--table->count];
            return;
        }
    }
}
