/*
 * host.c - the functions of the tessera_host table.
 *
 * Everything here except host->log() during plugin initialisation runs in a
 * microtask's child, on behalf of the executor: parameter look-ups (with
 * their templates replaced lazily, the first time a parameter is read), the
 * microtask's context and item, the result, progress and log lines. The
 * child exits when the executor returns, so memory allocated here is never
 * freed.
 *
 * A template is `{{NAME}}`, with optional spaces inside the braces, NAME
 * being [A-Za-z_][A-Za-z0-9_-]*. Built-in names come first; any other is a
 * key of the item, which must then be a JSON object that has it. A template
 * that stands for nothing means the job cannot run as written: the child
 * logs why at error level (the microtask's reason quotes it) and fails.
 * Other text, a "{{" that starts no template included, is left as it is.
 */
#define _GNU_SOURCE
#include "host.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tessera_wire.h>

#include "channel.h"
#include "io.h"

/* Progress changes smaller than this are not sent to the zygote, so that an
 * executor may report as often as it likes at the cost of a comparison. */
#define PROGRESS_STEP 0.01

/* The longest template name an error message quotes in full. */
#define QUOTED_NAME_MAX 128

static const char *loading_plugin;

void host_set_loading_plugin(const char *path)
{
    loading_plugin = path;
}

static void host_log(tessera_task *task, tessera_log_level level, const char *message);

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

void host_format_u64(char *text, uint64_t value)
{
    char digits[20];
    size_t count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (count > 0)
        *text++ = digits[--count];
    *text = '\0';
}

int host_task_init_from(struct tessera_task *task, const struct stage *stage, const char *item,
                        size_t item_length, uint64_t index, uint32_t attempt, size_t result_limit,
                        void *(*allocate)(size_t size))
{
    size_t resolved_size = (stage->param_count ? stage->param_count : 1) * sizeof(struct resolved_param);
    char *item_copy = allocate(item_length + 1);
    struct resolved_param *resolved = allocate(resolved_size);
    if (item_copy == NULL || resolved == NULL)
        return -1;
    memset(resolved, 0, resolved_size);
    memcpy(item_copy, item, item_length);
    item_copy[item_length] = '\0';
    *task = (struct tessera_task){
        .stage = stage,
        .item = item_copy,
        .item_length = strlen(item_copy),
        .index = index,
        .attempt = attempt,
        .resolved = resolved,
        .result_limit = result_limit,
    };
    /* Not snprintf: a stem's process would fault in its pages for this. */
    host_format_u64(task->index_text, index);
    host_format_u64(task->run_text, stage->context.run_id);
    host_format_u64(task->attempt_text, attempt);
    return 0;
}

int host_task_init(struct tessera_task *task, const struct stage *stage, const char *item,
                   size_t item_length, uint64_t index, uint32_t attempt, size_t result_limit)
{
    return host_task_init_from(task, stage, item, item_length, index, attempt, result_limit, malloc);
}

int host_task_send_result(const struct tessera_task *task)
{
    if (!task->has_result || task->stage->result.source == TW_RESULT_STDOUT)
        return 0;
    /* Over the limit, only the flag is sent: the zygote reports it. */
    size_t length = task->result_over_limit ? 0 : task->result_length;
    struct channel_header header = {CHANNEL_RESULT, (uint32_t)(1 + length)};
    unsigned char over_limit = task->result_over_limit;
    struct iovec iov[] = {
        {&header, sizeof header},
        {&over_limit, 1},
        {task->result, length},
    };
    return io_writev_all(CHANNEL_FD, iov, 3);
}

/* The item as JSON. */

static struct item_view *item_view(struct tessera_task *task)
{
    struct item_view *view = &task->item_view;
    if (view->scanned)
        return view;
    int kind = item_json_scan(task->item, task->item_length, &view->members, &view->count,
                              &view->error);
    if (kind < 0)
        out_of_memory("reading the item as JSON");
    view->kind = kind;
    if (view->count > 0) {
        view->texts = calloc(view->count, sizeof *view->texts);
        view->text_lengths = calloc(view->count, sizeof *view->text_lengths);
        if (view->texts == NULL || view->text_lengths == NULL)
            out_of_memory("reading the item as JSON");
    }
    view->scanned = true;
    return view;
}

/* The text of member `m` of the item (item_json_value_text()). */
static const char *member_text(struct tessera_task *task, size_t m, size_t *length)
{
    struct item_view *view = item_view(task);
    if (view->texts[m] == NULL) {
        view->texts[m] = item_json_value_text(task->item, &view->members[m],
                                              &view->text_lengths[m]);
        if (view->texts[m] == NULL)
            out_of_memory("reading the item as JSON");
    }
    *length = view->text_lengths[m];
    return view->texts[m];
}

/* Finds the first member of an object item whose key is `name`. */
static bool find_key(struct tessera_task *task, const char *name, size_t length, size_t *m)
{
    struct item_view *view = item_view(task);
    if (view->kind != ITEM_JSON_OBJECT)
        return false;
    for (size_t i = 0; i < view->count; i++) {
        if (item_json_key_equals(task->item, &view->members[i], name, length)) {
            *m = i;
            return true;
        }
    }
    return false;
}

/* A chunk's items: the members of an item that is a JSON array, else the
 * item alone. */
static size_t chunk_count(struct tessera_task *task)
{
    struct item_view *view = item_view(task);
    return view->kind == ITEM_JSON_ARRAY ? view->count : 1;
}

/* Item `i` of the chunk (i < chunk_count()), or NULL when it is a string
 * holding \u0000, which a C string cannot. */
static const char *chunk_item(struct tessera_task *task, size_t i)
{
    if (item_view(task)->kind != ITEM_JSON_ARRAY)
        return task->item;
    size_t length;
    const char *text = member_text(task, i, &length);
    return memchr(text, '\0', length) == NULL ? text : NULL;
}

/* Templates. */

struct text {
    const char *bytes;
    size_t length;
};

/* Ends a child whose parameter cannot be what the job meant, saying why
 * at error level: "template {{NAME}}: <reason>". */
__attribute__((format(printf, 4, 5))) static _Noreturn void
template_error(struct tessera_task *task, const char *name, size_t name_length,
               const char *format, ...)
{
    char reason[512];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(reason, sizeof reason, format, arguments);
    va_end(arguments);
    char line[768];
    int shown = name_length > QUOTED_NAME_MAX ? QUOTED_NAME_MAX : (int)name_length;
    snprintf(line, sizeof line, "template {{%.*s%s}}: %s", shown, name,
             name_length > QUOTED_NAME_MAX ? "..." : "", reason);
    host_log(task, TESSERA_LOG_ERROR, line);
    /* What the executor wrote through stdio before this is kept, as it is
     * when an executor returns. */
    fflush(NULL);
    _exit(TESSERA_FAILED);
}

static bool name_is(const char *name, size_t length, const char *builtin)
{
    return strlen(builtin) == length && memcmp(name, builtin, length) == 0;
}

/* Returns the length of the template `text` starts with, and its name in
 * *name and *name_length; 0 when `text` does not start with one. */
static size_t template_at(const char *text, const char **name, size_t *name_length)
{
    if (text[0] != '{' || text[1] != '{')
        return 0;
    const char *at = text + 2;
    while (*at == ' ')
        at++;
    const char *start = at;
    /* Spelled out rather than isalpha() and friends, which follow the
     * locale: a name is ASCII. */
    if (!((*at >= 'A' && *at <= 'Z') || (*at >= 'a' && *at <= 'z') || *at == '_'))
        return 0;
    while ((*at >= 'A' && *at <= 'Z') || (*at >= 'a' && *at <= 'z') ||
           (*at >= '0' && *at <= '9') || *at == '_' || *at == '-')
        at++;
    *name = start;
    *name_length = (size_t)(at - start);
    while (*at == ' ')
        at++;
    if (at[0] != '}' || at[1] != '}')
        return 0;
    return (size_t)(at + 2 - text);
}

/* The value of a built-in template, when `name` is one. */
static bool builtin_value(const struct tessera_task *task, const char *name, size_t length,
                          struct text *value)
{
    const struct stage_context *context = &task->stage->context;
    const char *text;
    if (name_is(name, length, "item") || name_is(name, length, "items")) {
        /* {{items}} inside a longer string, or as a map value, is the
         * item; only a list element of its own expands (resolve_list()). */
        *value = (struct text){task->item, task->item_length};
        return true;
    } else if (name_is(name, length, "index")) {
        text = task->index_text;
    } else if (name_is(name, length, "run")) {
        text = task->run_text;
    } else if (name_is(name, length, "attempt")) {
        text = task->attempt_text;
    } else if (name_is(name, length, "job")) {
        text = context->job_name;
    } else if (name_is(name, length, "stage")) {
        text = context->stage_name;
    } else if (name_is(name, length, "input")) {
        text = context->input_path;
    } else if (name_is(name, length, "run_dir")) {
        text = context->run_dir;
    } else {
        return false;
    }
    *value = (struct text){text, strlen(text)};
    return true;
}

/* The text the template `name` stands for: a built-in, else the item's key
 * of that name. Ends the child when there is none. */
static struct text template_value(struct tessera_task *task, const char *name, size_t length)
{
    struct text value;
    if (builtin_value(task, name, length, &value))
        return value;
    const struct item_view *view = item_view(task);
    if (view->kind != ITEM_JSON_OBJECT && view->error.reason != NULL)
        template_error(task, name, length,
                       "the item is not a JSON object (invalid JSON at byte %zu: %s)",
                       view->error.at, view->error.reason);
    if (view->kind != ITEM_JSON_OBJECT)
        template_error(task, name, length, "the item is not a JSON object");
    int shown = length > QUOTED_NAME_MAX ? QUOTED_NAME_MAX : (int)length;
    size_t m;
    if (!find_key(task, name, length, &m))
        template_error(task, name, length, "the item has no key \"%.*s\"", shown, name);
    value.bytes = member_text(task, m, &value.length);
    if (memchr(value.bytes, '\0', value.length) != NULL)
        template_error(task, name, length,
                       "the item's \"%.*s\" holds \\u0000, which a parameter cannot", shown,
                       name);
    return value;
}

/* Writes `text` with its templates replaced to `out` (only measuring when
 * it is NULL) and returns the length; *replaced tells whether it had any. */
static size_t expand(struct tessera_task *task, const char *text, char *out, bool *replaced)
{
    size_t used = 0;
    *replaced = false;
    for (const char *at = text;;) {
        const char *open = strstr(at, "{{");
        size_t run = open != NULL ? (size_t)(open - at) : strlen(at);
        if (out != NULL)
            memcpy(out + used, at, run);
        used += run;
        if (open == NULL)
            return used;
        const char *name;
        size_t name_length;
        size_t length = template_at(open, &name, &name_length);
        /* A "{{" that starts no template: its first brace stays, and the
         * search goes on from the second. */
        struct text value = {open, 1};
        if (length > 0) {
            value = template_value(task, name, name_length);
            *replaced = true;
        }
        if (out != NULL)
            memcpy(out + used, value.bytes, value.length);
        used += value.length;
        at = open + (length > 0 ? length : 1);
    }
}

/* Returns `text` with its templates replaced, or `text` itself when it has
 * none. */
static const char *substitute(struct tessera_task *task, const char *text)
{
    bool replaced;
    size_t length = expand(task, text, NULL, &replaced);
    if (!replaced)
        return text;
    char *result = malloc(length + 1);
    if (result == NULL)
        out_of_memory("replacing templates");
    (void)expand(task, text, result, &replaced);
    result[length] = '\0';
    return result;
}

/* Whether a list element is {{items}} and nothing else. */
static bool is_items_element(const char *text)
{
    const char *name;
    size_t name_length;
    size_t length = template_at(text, &name, &name_length);
    return length > 0 && text[length] == '\0' && name_is(name, name_length, "items");
}

/* A list's elements: {{items}} on its own becomes the chunk's items, any
 * other element has its templates replaced. */
static void resolve_list(struct tessera_task *task, const struct stage_param *param,
                         struct resolved_param *resolved)
{
    size_t count = 0;
    for (uint32_t v = 0; v < param->value_count; v++)
        count += is_items_element(param->values[v]) ? chunk_count(task) : 1;
    const char **copy = malloc((count ? count : 1) * sizeof *copy);
    if (copy == NULL)
        out_of_memory("replacing templates");
    bool changed = count != param->value_count;
    size_t used = 0;
    for (uint32_t v = 0; v < param->value_count; v++) {
        const char *value = param->values[v];
        if (!is_items_element(value)) {
            copy[used] = substitute(task, value);
            changed = changed || copy[used] != value;
            used++;
            continue;
        }
        changed = true;
        size_t items = chunk_count(task);
        for (size_t i = 0; i < items; i++) {
            copy[used] = chunk_item(task, i);
            if (copy[used] == NULL)
                template_error(task, "items", 5,
                               "member %zu of the item holds \\u0000, which a parameter cannot",
                               i);
            used++;
        }
    }
    if (changed) {
        resolved->values = copy;
    } else {
        free(copy);
        resolved->values = param->values;
    }
    resolved->count = count;
}

/* Returns the values of parameter `p` with their templates replaced where
 * the ABI says: strings, list elements and map values (not map keys, and
 * not the text of numbers or booleans). The stage's own array is used when
 * nothing changes; otherwise a copy with the changed values. */
static const struct resolved_param *resolve(struct tessera_task *task, uint32_t p)
{
    struct resolved_param *resolved = &task->resolved[p];
    if (resolved->values != NULL)
        return resolved;
    const struct stage_param *param = &task->stage->params[p];
    if (param->type == TESSERA_PARAM_STRING_LIST) {
        resolve_list(task, param, resolved);
        return resolved;
    }
    uint32_t first = 0;
    uint32_t step = 1;
    if (param->type == TESSERA_PARAM_STRING_MAP) {
        first = 1; /* values only, not keys */
        step = 2;
    } else if (param->type != TESSERA_PARAM_STRING) {
        first = param->value_count; /* numbers and booleans: nothing to do */
    }
    const char **copy = NULL;
    for (uint32_t v = first; v < param->value_count; v += step) {
        const char *replaced = substitute(task, param->values[v]);
        if (replaced == param->values[v])
            continue;
        if (copy == NULL) {
            copy = malloc(param->value_count * sizeof *copy);
            if (copy == NULL)
                out_of_memory("replacing templates");
            memcpy(copy, param->values, param->value_count * sizeof *copy);
        }
        copy[v] = replaced;
    }
    resolved->values = copy != NULL ? copy : param->values;
    resolved->count = param->value_count;
    return resolved;
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
    return p < 0 ? NULL : resolve(task, (uint32_t)p)->values[0];
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
    return p < 0 ? 0 : resolve(task, (uint32_t)p)->count;
}

static const char *host_param_list_item(tessera_task *task, const char *name, size_t i)
{
    long p = find_param(task, name, false, TESSERA_PARAM_STRING_LIST);
    if (p < 0)
        return NULL;
    const struct resolved_param *list = resolve(task, (uint32_t)p);
    return i < list->count ? list->values[i] : NULL;
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
    return resolve(task, (uint32_t)p)->values[2 * i + 1];
}

static int host_set_result(tessera_task *task, const void *data, size_t length)
{
    if (task == NULL)
        return -1;
    /* The stage's result is its standard output: nothing to keep. */
    if (task->stage->result.source == TW_RESULT_STDOUT)
        return 0;
    if (data == NULL)
        length = 0;
    unsigned char *copy = NULL;
    bool over_limit = length > task->result_limit;
    /* A result over the limit is not kept: the daemon fails the microtask
     * for it, which is the executor's answer, not a failed call. */
    if (!over_limit) {
        copy = malloc(length ? length : 1);
        if (copy == NULL)
            return -1;
        if (length > 0)
            memcpy(copy, data, length);
    }
    free(task->result);
    task->result = copy;
    task->result_length = over_limit ? 0 : length;
    task->result_over_limit = over_limit;
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
 * reason quotes (CHANNEL_ERROR), or that its failure is permanent
 * (CHANNEL_PERMANENT). */
static void send_text(uint32_t type, const char *message)
{
    size_t length = strlen(message);
    if (length > CHANNEL_ERROR_MAX)
        length = CHANNEL_ERROR_MAX;
    struct channel_header header = {type, (uint32_t)length};
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
        send_text(CHANNEL_ERROR, message);
}

/* ABI 1.1: the microtask's context and its item as JSON. */

static uint64_t host_run_id(tessera_task *task)
{
    return task ? task->stage->context.run_id : 0;
}

static const char *host_job_name(tessera_task *task)
{
    return task ? task->stage->context.job_name : NULL;
}

static const char *host_stage_name(tessera_task *task)
{
    return task ? task->stage->context.stage_name : NULL;
}

static uint32_t host_attempt(tessera_task *task)
{
    return task ? task->attempt : 0;
}

/* The stage's strings are "" for none; the ABI says NULL. */
static const char *unless_empty(const char *text)
{
    return text[0] != '\0' ? text : NULL;
}

static const char *host_input_path(tessera_task *task)
{
    return task ? unless_empty(task->stage->context.input_path) : NULL;
}

static const char *host_run_dir(tessera_task *task)
{
    return task ? unless_empty(task->stage->context.run_dir) : NULL;
}

static const char *host_item_field(tessera_task *task, const char *key)
{
    size_t m;
    if (task == NULL || key == NULL || !find_key(task, key, strlen(key), &m))
        return NULL;
    size_t length;
    const char *text = member_text(task, m, &length);
    return memchr(text, '\0', length) == NULL ? text : NULL;
}

static size_t host_item_count(tessera_task *task)
{
    return task ? chunk_count(task) : 0;
}

static const char *host_item_at(tessera_task *task, size_t i)
{
    if (task == NULL || i >= chunk_count(task))
        return NULL;
    return chunk_item(task, i);
}

static void host_fail_permanently(tessera_task *task, const char *reason)
{
    if (task == NULL)
        return;
    send_text(CHANNEL_PERMANENT, reason ? reason : "");
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
    .run_id = host_run_id,
    .job_name = host_job_name,
    .stage_name = host_stage_name,
    .attempt = host_attempt,
    .input_path = host_input_path,
    .run_dir = host_run_dir,
    .item_field = host_item_field,
    .item_count = host_item_count,
    .item_at = host_item_at,
    .fail_permanently = host_fail_permanently,
};
