/*
 * describe.c - `tessera-worker describe FILE.so...`: what the plugins declare.
 *
 * The daemon never loads plugins itself (their code must not run in it); it
 * asks this mode instead, when it starts, reloads or checks a
 * configuration. The mode loads every file with the same loader as the
 * zygote and prints one JSON document on standard output:
 *
 *   {"plugins":[{"path":..., "ok":true, "name":..., "version":...,
 *                "description":..., "abi":"1.0", "executors":[{"name":...,
 *                "description":..., "params":[{"name":..., "type":...,
 *                "required":..., "default":..., "description":...}]}]},
 *               {"path":..., "ok":false, "error":...}]}
 *
 * Plugin entry points may print; while they run, descriptor 1 points at
 * standard error and the document goes to a saved copy of the original
 * standard output, so it stays valid JSON.
 */
#define _GNU_SOURCE
#include "describe.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "loader.h"
#include "wire.h"

static void put(struct buf *json, const char *text)
{
    buf_append(json, text, strlen(text));
}

/* Length of the well-formed UTF-8 sequence at `s` (which has `left` bytes),
 * or 0 when the bytes there are not one. */
static size_t utf8_sequence(const unsigned char *s, size_t left)
{
    size_t length;
    unsigned min;
    unsigned code;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0)
        length = 2, min = 0x80, code = s[0] & 0x1f;
    else if ((s[0] & 0xf0) == 0xe0)
        length = 3, min = 0x800, code = s[0] & 0x0f;
    else if ((s[0] & 0xf8) == 0xf0)
        length = 4, min = 0x10000, code = s[0] & 0x07;
    else
        return 0;
    if (left < length)
        return 0;
    for (size_t i = 1; i < length; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        code = code << 6 | (s[i] & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
        return 0;
    return length;
}

/* Appends `text` as a JSON string, or null when it is NULL. Quotes,
 * backslashes and control characters are escaped; bytes that are not UTF-8
 * become U+FFFD, so the document is valid whatever a plugin declares. */
static void put_string(struct buf *json, const char *text)
{
    if (text == NULL) {
        put(json, "null");
        return;
    }
    const unsigned char *s = (const unsigned char *)text;
    size_t left = strlen(text);
    put(json, "\"");
    while (left > 0) {
        size_t length = utf8_sequence(s, left);
        if (length == 0) {
            put(json, "\\ufffd");
            length = 1;
        } else if (*s == '"' || *s == '\\') {
            char escaped[2] = {'\\', (char)*s};
            buf_append(json, escaped, 2);
        } else if (*s < 0x20) {
            char escaped[7];
            snprintf(escaped, sizeof escaped, "\\u%04x", *s);
            buf_append(json, escaped, 6);
        } else {
            buf_append(json, s, length);
        }
        s += length;
        left -= length;
    }
    put(json, "\"");
}

static const char *type_name(tessera_param_type type)
{
    switch (type) {
    case TESSERA_PARAM_STRING:
        return "string";
    case TESSERA_PARAM_INTEGER:
        return "integer";
    case TESSERA_PARAM_NUMBER:
        return "number";
    case TESSERA_PARAM_BOOLEAN:
        return "boolean";
    case TESSERA_PARAM_STRING_LIST:
        return "string_list";
    case TESSERA_PARAM_STRING_MAP:
        return "string_map";
    }
    return "unknown"; /* the loader refuses such plugins */
}

static void put_param(struct buf *json, const tessera_param *param)
{
    put(json, "{\"name\":");
    put_string(json, param->name);
    put(json, ",\"type\":");
    put_string(json, type_name(param->type));
    put(json, param->required ? ",\"required\":true" : ",\"required\":false");
    put(json, ",\"default\":");
    put_string(json, param->default_value);
    put(json, ",\"description\":");
    put_string(json, param->description);
    put(json, "}");
}

static void put_plugin(struct buf *json, const struct plugin *plugin)
{
    const tessera_plugin *declaration = plugin->declaration;
    put(json, "{\"path\":");
    put_string(json, plugin->path);
    put(json, ",\"ok\":true,\"name\":");
    put_string(json, declaration->name);
    put(json, ",\"version\":");
    put_string(json, declaration->version);
    put(json, ",\"description\":");
    put_string(json, declaration->description);
    char abi[32];
    snprintf(abi, sizeof abi, "%u.%u", declaration->abi_major, declaration->abi_minor);
    put(json, ",\"abi\":");
    put_string(json, abi);
    put(json, ",\"executors\":[");
    for (uint32_t e = 0; e < declaration->executor_count; e++) {
        const tessera_executor *executor = &declaration->executors[e];
        put(json, e ? ",{\"name\":" : "{\"name\":");
        put_string(json, executor->name);
        put(json, ",\"description\":");
        put_string(json, executor->description);
        put(json, ",\"params\":[");
        for (uint32_t p = 0; p < executor->param_count; p++) {
            if (p > 0)
                put(json, ",");
            put_param(json, &executor->params[p]);
        }
        put(json, "]}");
    }
    put(json, "]}");
}

static void put_refusal(struct buf *json, const char *path, const char *error)
{
    put(json, "{\"path\":");
    put_string(json, path);
    put(json, ",\"ok\":false,\"error\":");
    put_string(json, error);
    put(json, "}");
}

int describe_main(int file_count, char **files)
{
    /* Keep the real standard output for the document, and let anything the
     * plugins print while loading go to standard error. */
    int document_fd = (int)RETRY(fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3));
    if (document_fd == -1 || RETRY(dup2(STDERR_FILENO, STDOUT_FILENO)) == -1) {
        worker_log("cannot set up standard output: %s", strerror(errno));
        return EXIT_FAILURE;
    }

    struct plugin_set set = {0};
    struct buf json = {0};
    put(&json, "{\"plugins\":[");
    for (int i = 0; i < file_count; i++) {
        if (i > 0)
            put(&json, ",");
        char *path = loader_absolute_path(files[i]);
        char *error = NULL;
        if (loader_load(&set, path, &error) == 0) {
            put_plugin(&json, &set.plugins[set.count - 1]);
        } else {
            put_refusal(&json, path, error);
            free(error);
        }
        free(path);
    }
    put(&json, "]}\n");

    if (io_write_all(document_fd, json.data, json.length) == -1) {
        worker_log("cannot write the plugin description: %s", strerror(errno));
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}
