/*
 * hostile.c - the "hostile" test plugin: executors that misbehave on
 * purpose, one way each, so the tests can check that the worker contains
 * them (crashes, runaway CPU, memory and output, ignored signals) and that
 * the ordinary paths (results, progress, parameters, logging) work.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tessera/plugin.h>

#define CHUNK (1024 * 1024)

/* Always true; the loops below test it so the compiler neither removes them
 * nor complains that the functions never return. */
static volatile int forever = 1;

/* Writes through a pointer the compiler cannot prove to be NULL, so the
 * store is really made (and faults) instead of being optimised away. */
static void write_through(char *pointer)
{
    char *volatile target = pointer;
    *target = 1;
}

/* Sets the result to the item and prints "ok <item>". */
static int hostile_ok(const tessera_host *host, tessera_task *task)
{
    const char *item = host->item(task);
    host->set_result(task, item, strlen(item));
    printf("ok %s\n", item);
    return TESSERA_OK;
}

static int hostile_fail(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    fprintf(stderr, "failing on purpose\n");
    return 3;
}

static int hostile_segfault(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    write_through(NULL);
    return TESSERA_FAILED;
}

static int hostile_abort(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    abort();
}

/* Burns CPU until RLIMIT_CPU stops it. */
static int hostile_spin(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    while (forever)
        continue;
    return TESSERA_FAILED;
}

/* Ignores SIGTERM and sleeps until the daemon's wall limit sends SIGKILL. */
static int hostile_sleep_ignore_term(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    signal(SIGTERM, SIG_IGN);
    while (forever)
        sleep(1000);
    return TESSERA_FAILED;
}

/* Allocates and touches memory until RLIMIT_AS refuses more, then crashes
 * on the NULL it got. */
static int hostile_balloon(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    for (;;) {
        char *chunk = malloc(CHUNK);
        if (chunk == NULL) {
            write_through(chunk);
            return TESSERA_FAILED;
        }
        memset(chunk, 0xa5, CHUNK);
    }
}

/* Writes to standard output until the output limit stops it. */
static int hostile_flood(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    static char line[4096];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    while (forever)
        fwrite(line, 1, sizeof line, stdout);
    return TESSERA_FAILED;
}

static int hostile_progress(const tessera_host *host, tessera_task *task)
{
    host->progress(task, 0.25);
    host->progress(task, 0.5);
    host->progress(task, 1.0);
    static const char result[] = "{\"done\":true}";
    host->set_result(task, result, sizeof result - 1);
    return TESSERA_OK;
}

/* Sets the result to {"text": <text>, "count": <count>}. */
static int hostile_echo_params(const tessera_host *host, tessera_task *task)
{
    const char *text = host->param_string(task, "text");
    int64_t count = 0;
    if (text == NULL || host->param_integer(task, "count", &count) != 0) {
        host->log(task, TESSERA_LOG_ERROR, "text or count is missing");
        return TESSERA_FAILED;
    }
    /* Each byte of text takes at most six bytes escaped (\u00XX). */
    size_t capacity = strlen(text) * 6 + 64;
    char *json = malloc(capacity);
    if (json == NULL)
        return TESSERA_FAILED;
    size_t length = (size_t)sprintf(json, "{\"text\":\"");
    for (const unsigned char *c = (const unsigned char *)text; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\')
            length += (size_t)sprintf(json + length, "\\%c", *c);
        else if (*c < 0x20)
            length += (size_t)sprintf(json + length, "\\u%04x", *c);
        else
            json[length++] = (char)*c;
    }
    length += (size_t)sprintf(json + length, "\",\"count\":%lld}", (long long)count);
    host->set_result(task, json, length);
    free(json);
    return TESSERA_OK;
}

static int hostile_loglines(const tessera_host *host, tessera_task *task)
{
    host->log(task, TESSERA_LOG_ERROR, "an error line");
    host->log(task, TESSERA_LOG_WARNING, "a warning line");
    host->log(task, TESSERA_LOG_INFO, "an info line");
    host->log(task, TESSERA_LOG_DEBUG, "a debug line");
    return TESSERA_OK;
}

static const tessera_param echo_params[] = {
    {"text", TESSERA_PARAM_STRING, 1, NULL, "Text echoed in the result."},
    {"count", TESSERA_PARAM_INTEGER, 0, "1", "A number echoed in the result."},
};

/* An executor without parameters. */
#define EXECUTOR(name, function, text) {name, text, NULL, 0, function}

static const tessera_executor hostile_executors[] = {
    EXECUTOR("ok", hostile_ok, "Sets the result to the item and prints \"ok <item>\"."),
    EXECUTOR("fail", hostile_fail, "Prints to standard error and returns 3."),
    EXECUTOR("segfault", hostile_segfault, "Writes through a NULL pointer."),
    EXECUTOR("abort", hostile_abort, "Calls abort()."),
    EXECUTOR("spin", hostile_spin, "Burns CPU forever."),
    EXECUTOR("sleep_ignore_term", hostile_sleep_ignore_term,
             "Ignores SIGTERM and sleeps forever."),
    EXECUTOR("balloon", hostile_balloon, "Allocates memory until it runs out, then crashes."),
    EXECUTOR("flood", hostile_flood, "Writes to standard output forever."),
    EXECUTOR("progress", hostile_progress,
             "Reports progress 0.25, 0.5 and 1.0 and sets the result {\"done\":true}."),
    {"echo_params", "Sets the result to a JSON object of its parameters.", echo_params,
     sizeof echo_params / sizeof echo_params[0], hostile_echo_params},
    EXECUTOR("loglines", hostile_loglines, "Logs one line at each level."),
};

static const tessera_plugin hostile_plugin = {
    .abi_major = TESSERA_ABI_MAJOR,
    .abi_minor = TESSERA_ABI_MINOR,
    .name = "hostile",
    .version = "1.0",
    .description = "Executors that misbehave on purpose, for the test suite.",
    .executors = hostile_executors,
    .executor_count = sizeof hostile_executors / sizeof hostile_executors[0],
};

const tessera_plugin *tessera_plugin_init(const tessera_host *host)
{
    (void)host;
    return &hostile_plugin;
}
