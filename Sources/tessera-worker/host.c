/*
 * host.c - the functions of the tessera_host table.
 *
 * Everything here except host->log() during plugin initialisation runs in a
 * microtask's child, on behalf of the executor: parameter look-ups (with
 * {{item}} substituted lazily, the first time a parameter is read), the
 * result, progress and log lines. The child exits when the executor
 * returns, so memory allocated here is never freed.
 */
#define _GNU_SOURCE
#include "host.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "io.h"

#define ITEM_PLACEHOLDER "{{item}}"

/* Progress changes smaller than this are not sent to the zygote, so that an
 * executor may report as often as it likes at the cost of a comparison. */
#define PROGRESS_STEP 0.01

static const char *loading_plugin;

void host_set_loading_plugin(const char *path)
{
    loading_plugin = path;
}

/* The child cannot continue without memory the executor asked for; it says
 * so on its captured standard error and fails the task. */
static _Noreturn void out_of_memory(const char *what)
{
    static const char prefix[] = "tessera-worker: out of memory while ";
    struct iovec iov[] = {
        {(void *)prefix, sizeof prefix - 1},
        {(void *)what, strlen(what)},
        {(void *)"\n", 1},
    };
    (void)io_writev_all(STDERR_FILENO, iov, 3);
    _exit(TESSERA_FAILED);
}

int host_task_init(struct tessera_task *task, const struct stage *stage, const char *item,
                   size_t item_length, uint64_t index, size_t result_limit)
{
    char *item_copy = malloc(item_length + 1);
    const char *const **resolved = calloc(stage->param_count ? stage->param_count : 1,
                                          sizeof *resolved);
    if (item_copy == NULL || resolved == NULL)
        return -1;
    memcpy(item_copy, item, item_length);
    item_copy[item_length] = '\0';
    *task = (struct tessera_task){
        .stage = stage,
        .item = item_copy,
        .index = index,
        .resolved = resolved,
        .result_limit = result_limit,
    };
    return 0;
}

int host_task_send_result(const struct tessera_task *task)
{
    if (!task->has_result)
        return 0;
    struct channel_header header = {CHANNEL_RESULT, (uint32_t)(1 + task->result_length)};
    unsigned char truncated = task->result_truncated;
    struct iovec iov[] = {
        {&header, sizeof header},
        {&truncated, 1},
        {task->result, task->result_length},
    };
    return io_writev_all(CHANNEL_FD, iov, 3);
}

/* Returns `text` with every {{item}} replaced by `item`, or `text` itself
 * when it has none. */
static const char *substitute(const char *text, const char *item)
{
    const char *hit = strstr(text, ITEM_PLACEHOLDER);
    if (hit == NULL)
        return text;
    size_t placeholder = strlen(ITEM_PLACEHOLDER);
    size_t item_length = strlen(item);
    size_t hits = 0;
    for (const char *at = hit; at != NULL; at = strstr(at + placeholder, ITEM_PLACEHOLDER))
        hits++;
    char *result = malloc(strlen(text) - hits * placeholder + hits * item_length + 1);
    if (result == NULL)
        out_of_memory("substituting {{item}}");
    char *out = result;
    const char *from = text;
    for (; hit != NULL; hit = strstr(from, ITEM_PLACEHOLDER)) {
        memcpy(out, from, (size_t)(hit - from));
        out += hit - from;
        memcpy(out, item, item_length);
        out += item_length;
        from = hit + placeholder;
    }
    strcpy(out, from);
    return result;
}

/* Returns the values of parameter `p` with {{item}} substituted where the
 * ABI says it is: strings, list elements and map values (not map keys, and
 * not the text of numbers or booleans). The stage's own array is returned
 * when nothing changes; otherwise a copy with the changed values. */
static const char *const *resolve(struct tessera_task *task, uint32_t p)
{
    if (task->resolved[p] != NULL)
        return task->resolved[p];
    const struct stage_param *param = &task->stage->params[p];
    uint32_t first = 0;
    uint32_t step = 1;
    if (param->type == TESSERA_PARAM_STRING_MAP) {
        first = 1; /* values only, not keys */
        step = 2;
    } else if (param->type != TESSERA_PARAM_STRING && param->type != TESSERA_PARAM_STRING_LIST) {
        first = param->value_count; /* numbers and booleans: nothing to do */
    }
    const char **copy = NULL;
    for (uint32_t v = first; v < param->value_count; v += step) {
        const char *replaced = substitute(param->values[v], task->item);
        if (replaced == param->values[v])
            continue;
        if (copy == NULL) {
            copy = malloc(param->value_count * sizeof *copy);
            if (copy == NULL)
                out_of_memory("substituting {{item}}");
            memcpy(copy, param->values, param->value_count * sizeof *copy);
        }
        copy[v] = replaced;
    }
    task->resolved[p] = copy != NULL ? copy : param->values;
    return task->resolved[p];
}

/* Finds parameter `name` of the given kind; returns its index or -1. */
static long find_param(tessera_task *task, const char *name, bool scalar,
                       tessera_param_type collection)
{
    if (task == NULL || name == NULL)
        return -1;
    for (uint32_t p = 0; p < task->stage->param_count; p++) {
        const struct stage_param *param = &task->stage->params[p];
        if (strcmp(param->name, name) != 0)
            continue;
        bool is_scalar = param->type != TESSERA_PARAM_STRING_LIST &&
                         param->type != TESSERA_PARAM_STRING_MAP;
        bool wanted = scalar ? is_scalar : param->type == collection;
        return wanted ? (long)p : -1;
    }
    return -1;
}

static const char *host_item(tessera_task *task)
{
    return task ? task->item : "";
}

static uint64_t host_index(tessera_task *task)
{
    return task ? task->index : 0;
}

static const char *host_param_string(tessera_task *task, const char *name)
{
    long p = find_param(task, name, true, 0);
    return p < 0 ? NULL : resolve(task, (uint32_t)p)[0];
}

/* The text of a parameter that is to be read as a number: set, not empty,
 * and not starting with the white space strtoll() and strtod() would skip. */
static const char *numeric_text(tessera_task *task, const char *name)
{
    const char *text = host_param_string(task, name);
    if (text == NULL || *text == '\0' || isspace((unsigned char)*text))
        return NULL;
    return text;
}

static int host_param_integer(tessera_task *task, const char *name, int64_t *out)
{
    const char *text = numeric_text(task, name);
    if (text == NULL)
        return -1;
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = value;
    return 0;
}

static int host_param_number(tessera_task *task, const char *name, double *out)
{
    const char *text = numeric_text(task, name);
    if (text == NULL)
        return -1;
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = value;
    return 0;
}

static int host_param_boolean(tessera_task *task, const char *name, int *out)
{
    const char *text = host_param_string(task, name);
    if (text == NULL)
        return -1;
    if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0)
        *out = 1;
    else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0)
        *out = 0;
    else
        return -1;
    return 0;
}

static size_t host_param_list_count(tessera_task *task, const char *name)
{
    long p = find_param(task, name, false, TESSERA_PARAM_STRING_LIST);
    return p < 0 ? 0 : task->stage->params[p].value_count;
}

static const char *host_param_list_item(tessera_task *task, const char *name, size_t i)
{
    long p = find_param(task, name, false, TESSERA_PARAM_STRING_LIST);
    if (p < 0 || i >= task->stage->params[p].value_count)
        return NULL;
    return resolve(task, (uint32_t)p)[i];
}

static size_t host_param_map_count(tessera_task *task, const char *name)
{
    long p = find_param(task, name, false, TESSERA_PARAM_STRING_MAP);
    return p < 0 ? 0 : task->stage->params[p].value_count / 2;
}

static const char *host_param_map_key(tessera_task *task, const char *name, size_t i)
{
    long p = find_param(task, name, false, TESSERA_PARAM_STRING_MAP);
    if (p < 0 || i >= task->stage->params[p].value_count / 2)
        return NULL;
    return task->stage->params[p].values[2 * i];
}

static const char *host_param_map_value(tessera_task *task, const char *name, size_t i)
{
    long p = find_param(task, name, false, TESSERA_PARAM_STRING_MAP);
    if (p < 0 || i >= task->stage->params[p].value_count / 2)
        return NULL;
    return resolve(task, (uint32_t)p)[2 * i + 1];
}

static int host_set_result(tessera_task *task, const void *data, size_t length)
{
    if (task == NULL)
        return -1;
    if (data == NULL)
        length = 0;
    size_t kept = length < task->result_limit ? length : task->result_limit;
    unsigned char *copy = malloc(kept ? kept : 1);
    if (copy == NULL)
        return -1;
    if (kept > 0)
        memcpy(copy, data, kept);
    free(task->result);
    task->result = copy;
    task->result_length = kept;
    task->result_truncated = kept < length;
    task->has_result = true;
    return 0;
}

static void host_progress(tessera_task *task, double fraction)
{
    if (task == NULL || isnan(fraction))
        return;
    fraction = fraction < 0.0 ? 0.0 : fraction > 1.0 ? 1.0 : fraction;
    bool completes = fraction == 1.0 && task->progress_last != 1.0;
    if (task->progress_sent && fabs(fraction - task->progress_last) < PROGRESS_STEP && !completes)
        return;
    struct {
        struct channel_header header;
        double fraction;
    } frame = {{CHANNEL_PROGRESS, sizeof(double)}, fraction};
    /* A channel that cannot be written means the zygote is gone; the child
     * is about to be killed and has nobody to report to. */
    (void)io_write_all(CHANNEL_FD, &frame, sizeof frame);
    task->progress_sent = true;
    task->progress_last = fraction;
}

/* Tells the zygote the executor's latest error, which a failed microtask's
 * reason quotes. */
static void send_error(const char *message)
{
    size_t length = strlen(message);
    if (length > CHANNEL_ERROR_MAX)
        length = CHANNEL_ERROR_MAX;
    struct channel_header header = {CHANNEL_ERROR, (uint32_t)length};
    struct iovec iov[] = {
        {&header, sizeof header},
        {(void *)message, length},
    };
    (void)io_writev_all(CHANNEL_FD, iov, 2);
}

static const char *level_name(tessera_log_level level)
{
    switch (level) {
    case TESSERA_LOG_ERROR:
        return "error";
    case TESSERA_LOG_WARNING:
        return "warning";
    case TESSERA_LOG_INFO:
        return "info";
    case TESSERA_LOG_DEBUG:
        return "debug";
    }
    return "log";
}

static void host_log(tessera_task *task, tessera_log_level level, const char *message)
{
    const char *name = level_name(level);
    if (message == NULL)
        message = "";
    struct iovec iov[6];
    int count = 0;
    if (task == NULL && loading_plugin != NULL) {
        iov[count++] = (struct iovec){(void *)loading_plugin, strlen(loading_plugin)};
        iov[count++] = (struct iovec){(void *)": ", 2};
    }
    iov[count++] = (struct iovec){(void *)name, strlen(name)};
    iov[count++] = (struct iovec){(void *)": ", 2};
    iov[count++] = (struct iovec){(void *)message, strlen(message)};
    iov[count++] = (struct iovec){(void *)"\n", 1};
    /* A log line that cannot be written has nowhere else to go. */
    (void)io_writev_all(STDERR_FILENO, iov, count);
    if (task != NULL && level == TESSERA_LOG_ERROR)
        send_error(message);
}

const tessera_host host_table = {
    .abi_major = TESSERA_ABI_MAJOR,
    .abi_minor = TESSERA_ABI_MINOR,
    .size = sizeof(tessera_host),
    .item = host_item,
    .index = host_index,
    .param_string = host_param_string,
    .param_integer = host_param_integer,
    .param_number = host_param_number,
    .param_boolean = host_param_boolean,
    .param_list_count = host_param_list_count,
    .param_list_item = host_param_list_item,
    .param_map_count = host_param_map_count,
    .param_map_key = host_param_map_key,
    .param_map_value = host_param_map_value,
    .set_result = host_set_result,
    .progress = host_progress,
    .log = host_log,
};
