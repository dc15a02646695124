/*
 * tessera/plugin.h - the Tessera executor plugin ABI.
 *
 * This header is the whole contract between Tessera and an executor plugin.
 * A plugin is a shared object that exports one function,
 * tessera_plugin_init(), and links against nothing of Tessera's: everything
 * the host offers reaches the plugin through the tessera_host table of
 * function pointers passed to that entry point and to every executor call.
 *
 * Versioning rules (the ones SQLite and Redis modules have kept for decades):
 *   - TESSERA_ABI_MAJOR changes only when an existing struct or function
 *     changes meaning. A host refuses a plugin built for another major.
 *   - TESSERA_ABI_MINOR grows when members are added. Members are only ever
 *     added at the end of a struct. A host loads plugins built for its own
 *     minor version or an older one, and refuses one that declares a newer
 *     minor (it may call members this host does not have). A plugin that
 *     is to load on older hosts declares the oldest minor it needs and
 *     checks host->abi_minor (or host->size) before it uses a newer member.
 *   - 1.1 added, at the end of tessera_host, the microtask's context
 *     (run_id ... run_dir) and its item read as JSON (item_field,
 *     item_count, item_at).
 *   - 1.2 added fail_permanently, so that an executor can say that a
 *     failure is not worth retrying.
 *
 * Where code runs:
 *   - tessera_plugin_init() runs in the worker zygote (and in the short-lived
 *     process that reads declarations for `tesserad --check` and reloads),
 *     never in the daemon. It must not start threads or hold open files the
 *     executors rely on: the zygote forks after it.
 *   - An executor runs in a forked child, one per microtask, after the
 *     sandbox and resource limits are applied. Its standard output and
 *     standard error are captured (up to the stage's `output` limit); for
 *     a stage whose result is its standard output, standard output is the
 *     result instead (up to the stage's result limit). The child exits
 *     when the executor returns, so an executor may leak memory and file
 *     descriptors freely.
 *
 * Templates: the text of string parameters, list elements and map values
 * arrives with every `{{NAME}}` (spaces allowed inside the braces; NAME is
 * [A-Za-z_][A-Za-z0-9_-]*) replaced:
 *     {{item}}     the item            {{index}}    index(), in decimal
 *     {{run}}      run_id()            {{job}}      job_name()
 *     {{stage}}    stage_name()        {{attempt}}  attempt()
 *     {{input}}    input_path() or ""  {{run_dir}}  run_dir() or ""
 *     {{items}}    as a list element of its own: one element per item of a
 *                  chunk (item_count(), item_at()); elsewhere the item
 *     {{KEY}}      any other name: item_field(KEY); when the item is not
 *                  a JSON object or lacks KEY, the microtask fails without
 *                  the executor seeing the parameter ("template {{KEY}}:
 *                  the item has no key ...", logged at error level)
 * Map keys and numeric and boolean parameters are left as they are. The
 * same context is in the environment: TESSERA_ITEM (left out for an item
 * over 64 KiB), TESSERA_INDEX, TESSERA_RUN, TESSERA_JOB, TESSERA_STAGE,
 * TESSERA_ATTEMPT, and TESSERA_RUN_DIR and TESSERA_INPUT when there is one.
 *
 * Copyright: the Tessera authors. This header may be copied into plugin
 * source trees under any licence.
 */
#ifndef TESSERA_PLUGIN_H
#define TESSERA_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TESSERA_ABI_MAJOR 1
#define TESSERA_ABI_MINOR 2

/* The name of the one symbol a plugin must export. */
#define TESSERA_PLUGIN_ENTRY "tessera_plugin_init"

/* Executor return values. Any other non-zero value is a failure too and is
 * reported as the microtask's exit code (clamped to 1..255). */
#define TESSERA_OK 0
#define TESSERA_FAILED 1

/* The type of a declared parameter. Job files are checked against it when
 * they are loaded. */
typedef enum tessera_param_type {
    TESSERA_PARAM_STRING = 1,      /* "text"; templates are replaced */
    TESSERA_PARAM_INTEGER = 2,     /* 64-bit signed integer */
    TESSERA_PARAM_NUMBER = 3,      /* double */
    TESSERA_PARAM_BOOLEAN = 4,     /* true or false */
    TESSERA_PARAM_STRING_LIST = 5, /* [a, b, c]; templates replaced in each */
    TESSERA_PARAM_STRING_MAP = 6   /* {K: v}; templates replaced in values */
} tessera_param_type;

typedef enum tessera_log_level {
    TESSERA_LOG_ERROR = 3,
    TESSERA_LOG_WARNING = 4,
    TESSERA_LOG_INFO = 6,
    TESSERA_LOG_DEBUG = 7
} tessera_log_level;

/* One declared parameter of an executor. All strings are owned by the plugin
 * and must stay valid for as long as the plugin is loaded (static storage is
 * the usual choice). */
typedef struct tessera_param {
    const char *name;           /* [a-z_][a-z0-9_]*, unique per executor */
    tessera_param_type type;
    int required;               /* non-zero: a job must set it */
    const char *default_value;  /* textual default or NULL; shown to users */
    const char *description;    /* one sentence, shown by `tessera plugins` */
} tessera_param;

/* Opaque handle of the microtask being executed. Valid only during the
 * executor call it was passed to. */
typedef struct tessera_task tessera_task;

typedef struct tessera_host tessera_host;

/* An executor. Runs in a sandboxed child; returns TESSERA_OK on success. */
typedef int (*tessera_execute_fn)(const tessera_host *host, tessera_task *task);

typedef struct tessera_executor {
    const char *name;           /* unique across all loaded plugins */
    const char *description;
    const tessera_param *params;
    uint32_t param_count;
    tessera_execute_fn execute;
} tessera_executor;

/* What tessera_plugin_init() returns. The struct and everything it points to
 * are owned by the plugin and must stay valid while it is loaded. */
typedef struct tessera_plugin {
    uint32_t abi_major;         /* set to TESSERA_ABI_MAJOR */
    uint32_t abi_minor;         /* set to TESSERA_ABI_MINOR */
    const char *name;
    const char *version;
    const char *description;
    const tessera_executor *executors;
    uint32_t executor_count;
} tessera_plugin;

/* The functions the host offers. Strings returned by the host are owned by
 * the host and valid until the executor returns; they are NUL-terminated.
 * Members are only ever added at the end (check `size`). */
struct tessera_host {
    uint32_t abi_major;
    uint32_t abi_minor;
    size_t size;                /* sizeof(tessera_host) as the host knows it */

    /* The microtask's item (never NULL; "" when the stage has no items). */
    const char *(*item)(tessera_task *task);
    /* The microtask's 0-based index within its run. */
    uint64_t (*index)(tessera_task *task);

    /* Parameters as set by the job file, the run or the declared default,
     * with their templates replaced (see "Templates" above).
     * param_string returns NULL when the parameter is not set; for integer,
     * number and boolean parameters it returns their text. The typed getters
     * return 0 and fill *out when the parameter is set, -1 otherwise. */
    const char *(*param_string)(tessera_task *task, const char *name);
    int (*param_integer)(tessera_task *task, const char *name, int64_t *out);
    int (*param_number)(tessera_task *task, const char *name, double *out);
    int (*param_boolean)(tessera_task *task, const char *name, int *out);
    /* String lists: count (0 when unset; as {{items}} expanded) and element i
     * (NULL when out of range). */
    size_t (*param_list_count)(tessera_task *task, const char *name);
    const char *(*param_list_item)(tessera_task *task, const char *name, size_t i);
    /* String maps, in file order: count, and key/value of entry i. */
    size_t (*param_map_count)(tessera_task *task, const char *name);
    const char *(*param_map_key)(tessera_task *task, const char *name, size_t i);
    const char *(*param_map_value)(tessera_task *task, const char *name, size_t i);

    /* Sets the microtask's result (any bytes; JSON or text is conventional).
     * The host copies the data. A later call replaces the result. A result
     * longer than the stage's result limit is discarded, and the microtask
     * fails for it when it ends (the call still returns 0). When the
     * stage's result is its standard output, the call does nothing and
     * returns 0. Returns -1 when the copy cannot be allocated (under the
     * memory limit). */
    int (*set_result)(tessera_task *task, const void *data, size_t length);
    /* Reports progress, 0.0 to 1.0. Cheap; call as often as convenient. */
    void (*progress)(tessera_task *task, double fraction);
    /* Writes one line to the microtask's log (its captured standard error),
     * prefixed with the level. */
    void (*log)(tessera_task *task, tessera_log_level level, const char *message);

    /* ABI 1.1 */

    /* The id of the run the microtask belongs to. */
    uint64_t (*run_id)(tessera_task *task);
    /* The names of the job and of the stage (never NULL for a task). */
    const char *(*job_name)(tessera_task *task);
    const char *(*stage_name)(tessera_task *task);
    /* Which attempt at the microtask this is: 1 for the first, 2 for the
     * first retry, and so on. */
    uint32_t (*attempt)(tessera_task *task);
    /* The input file of a reduce stage (JSON Lines), or NULL for a stage
     * that has none. */
    const char *(*input_path)(tessera_task *task);
    /* The run's directory, or NULL when the run has none. */
    const char *(*run_dir)(tessera_task *task);
    /* The value of `key` in an item that is a JSON object, as {{key}} gives
     * it: a string decoded (escapes become UTF-8), any other value its JSON
     * text as written. NULL when the item is not a JSON object (or not valid
     * JSON), has no such key, or the value is a string holding \u0000.
     * Built-in template names are not special here. When a key appears
     * twice, the first counts. */
    const char *(*item_field)(tessera_task *task, const char *key);
    /* A chunk's items: when the item is a JSON array, the number of its
     * members; otherwise 1 (the item itself). */
    size_t (*item_count)(tessera_task *task);
    /* Item i of a chunk, as {{items}} expands it: a string member decoded,
     * any other member its JSON text; the item itself when it is not an
     * array. NULL when i is out of range, or for a string holding \u0000. */
    const char *(*item_at)(tessera_task *task, size_t i);

    /* ABI 1.2 */

    /* Says that this microtask's failure is permanent: another attempt
     * would fail the same way (its input is bad, not a service it needs
     * flaky), so its stage's retry policy does not try it again. `reason`
     * (may be NULL) becomes the failure's reason, as an error-level log()
     * would. It does not end the executor, which should then return
     * non-zero; one that returns TESSERA_OK succeeds all the same. */
    void (*fail_permanently)(tessera_task *task, const char *reason);
};

/* The entry point. The host calls it once per process after dlopen(), with
 * RTLD_NOW|RTLD_LOCAL. Return the plugin's declaration, or NULL to refuse
 * loading (log the reason with host->log(NULL, ...) first). */
const tessera_plugin *tessera_plugin_init(const tessera_host *host);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_PLUGIN_H */
