/*
 * item_json.h - reading the top level of a microtask's item as JSON.
 *
 * This file exists because the templates of parameters ({{name}} is a key
 * of an item that is a JSON object, {{items}} the members of a chunk, an
 * item that is a JSON array) and the host functions item_field, item_count
 * and item_at (plugin ABI 1.1) look into the item, and they do it in a
 * microtask's child, after fork, with nothing but the C library: so here
 * is a small scanner of our own rather than a library. The item comes from
 * outside, so the scanner reads nothing past the item's length, accepts
 * only well-formed JSON (RFC 8259), and skips nested values with a stack of
 * bits instead of recursion, nesting at most ITEM_JSON_MAX_DEPTH levels as
 * the daemon's parser does (TesseraProtocol/JSON.swift), so no item can
 * exhaust the child's stack. It allocates with malloc, which is what a
 * child may use (io.h).
 *
 * Only the top level is indexed: the members of the object or array, as
 * spans of the item's text. A member's text is decoded when asked for.
 */
#ifndef TESSERA_WORKER_ITEM_JSON_H
#define TESSERA_WORKER_ITEM_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* The deepest nesting accepted, the item itself counting as one level. */
#define ITEM_JSON_MAX_DEPTH 64

enum item_json_kind {
    ITEM_JSON_OTHER,  /* not an object or an array, or not valid JSON */
    ITEM_JSON_OBJECT,
    ITEM_JSON_ARRAY
};

/* Bytes `start` to `start + length` of the item's text. */
struct item_json_span {
    size_t start;
    size_t length;
};

struct item_json_member {
    struct item_json_span key;   /* objects: the key's string literal, quotes included */
    struct item_json_span value; /* the value's JSON text, without blanks around it */
};

/* Why text whose first non-blank byte is { or [ is not valid JSON. */
struct item_json_error {
    const char *reason; /* a static string; NULL when there is no error */
    size_t at;          /* the offset of the byte it was found at */
};

/* Scans the `length` bytes at `text`. When they are a JSON object or array,
 * stores its members, in order, in a new allocation *members (NULL when
 * there are none; free() it) and their number in *count, and returns the
 * kind. Returns ITEM_JSON_OTHER when they are not, with *error filled in
 * when they looked like one (a first non-blank { or [) but are not valid
 * JSON; -1 when out of memory. */
int item_json_scan(const char *text, size_t length, struct item_json_member **members,
                   size_t *count, struct item_json_error *error);

/* Whether the key of `member` (of an object scanned from `text`) decodes to
 * the `name_length` bytes at `name`. Allocates nothing. */
bool item_json_key_equals(const char *text, const struct item_json_member *member,
                          const char *name, size_t name_length);

/* The text a member's value stands for, in a new NUL-terminated allocation:
 * a string's decoded bytes (escapes, \u escapes and surrogate pairs become
 * UTF-8), any other value its JSON text as written. Its length is stored in
 * *length; it contains a NUL byte only where a string had \u0000. NULL
 * when out of memory. */
char *item_json_value_text(const char *text, const struct item_json_member *member,
                           size_t *length);

#endif /* TESSERA_WORKER_ITEM_JSON_H */
