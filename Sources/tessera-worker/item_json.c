/*
 * item_json.c - a bounded scanner of the top level of a JSON item (see
 * item_json.h for why the worker has one).
 *
 * Every read goes through the scanner's `at` and `length`, so no byte past
 * the text is looked at, whatever the text holds. A nested value is
 * skipped by one loop that keeps, per open container, one bit saying
 * whether it is an object: the nesting is bounded by the bits of a
 * uint64_t, and nothing recurses.
 */
#define _GNU_SOURCE
#include "item_json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The containers skip_value() may open inside a member: the item itself is
 * the first level. One bit each of a uint64_t. */
#define NESTED_MAX (ITEM_JSON_MAX_DEPTH - 1)
_Static_assert(NESTED_MAX <= 64, "the nesting must fit the bits of a uint64_t");

struct scanner {
    const unsigned char *text;
    size_t length;
    size_t at;
    struct item_json_error *error;
};

/* Where a decoded string goes: copied to `out`, compared with `expect`, or
 * only counted (both NULL). */
struct sink {
    char *out;
    const char *expect;
    size_t expect_length;
    size_t used;
    bool differs;
};

static bool fail(struct scanner *scanner, const char *reason)
{
    scanner->error->reason = reason;
    scanner->error->at = scanner->at;
    return false;
}

static bool at_end(const struct scanner *scanner)
{
    return scanner->at >= scanner->length;
}

/* The next byte; only called when !at_end(). */
static unsigned char peek(const struct scanner *scanner)
{
    return scanner->text[scanner->at];
}

/* RFC 8259's white space, not isspace()'s, which depends on the locale. */
static void skip_blanks(struct scanner *scanner)
{
    while (!at_end(scanner)) {
        unsigned char c = peek(scanner);
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        scanner->at++;
    }
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static void sink_put(struct sink *sink, const void *bytes, size_t count)
{
    if (sink == NULL || count == 0)
        return;
    if (sink->out != NULL)
        memcpy(sink->out + sink->used, bytes, count);
    if (sink->expect != NULL && !sink->differs &&
        (count > sink->expect_length - sink->used ||
         memcmp(sink->expect + sink->used, bytes, count) != 0))
        sink->differs = true;
    sink->used += count;
}

/* Writes code point `code` (at most U+10FFFF, not a surrogate) as UTF-8. */
static void sink_put_code_point(struct sink *sink, uint32_t code)
{
    unsigned char bytes[4];
    size_t count;
    if (code < 0x80) {
        bytes[0] = (unsigned char)code;
        count = 1;
    } else if (code < 0x800) {
        bytes[0] = (unsigned char)(0xC0 | code >> 6);
        bytes[1] = (unsigned char)(0x80 | (code & 0x3F));
        count = 2;
    } else if (code < 0x10000) {
        bytes[0] = (unsigned char)(0xE0 | code >> 12);
        bytes[1] = (unsigned char)(0x80 | (code >> 6 & 0x3F));
        bytes[2] = (unsigned char)(0x80 | (code & 0x3F));
        count = 3;
    } else {
        bytes[0] = (unsigned char)(0xF0 | code >> 18);
        bytes[1] = (unsigned char)(0x80 | (code >> 12 & 0x3F));
        bytes[2] = (unsigned char)(0x80 | (code >> 6 & 0x3F));
        bytes[3] = (unsigned char)(0x80 | (code & 0x3F));
        count = 4;
    }
    sink_put(sink, bytes, count);
}

/* Reads the four hex digits of a \u escape. */
static bool hex4(struct scanner *scanner, uint32_t *code)
{
    if (scanner->length - scanner->at < 4)
        return fail(scanner, "truncated \\u escape");
    uint32_t value = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = peek(scanner);
        uint32_t digit;
        if (is_digit(c))
            digit = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            digit = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            digit = (uint32_t)(c - 'A' + 10);
        else
            return fail(scanner, "invalid \\u escape");
        value = value << 4 | digit;
        scanner->at++;
    }
    *code = value;
    return true;
}

/* Reads the escape after a backslash and puts what it stands for. */
static bool escape(struct scanner *scanner, struct sink *sink)
{
    if (at_end(scanner))
        return fail(scanner, "unterminated escape");
    unsigned char c = peek(scanner);
    scanner->at++;
    uint32_t code;
    switch (c) {
    case '"':
    case '\\':
    case '/':
        code = c;
        break;
    case 'b':
        code = '\b';
        break;
    case 'f':
        code = '\f';
        break;
    case 'n':
        code = '\n';
        break;
    case 'r':
        code = '\r';
        break;
    case 't':
        code = '\t';
        break;
    case 'u':
        if (!hex4(scanner, &code))
            return false;
        if (code >= 0xDC00 && code < 0xE000)
            return fail(scanner, "unpaired surrogate");
        if (code >= 0xD800 && code < 0xDC00) {
            uint32_t low;
            if (scanner->length - scanner->at < 2 || scanner->text[scanner->at] != '\\' ||
                scanner->text[scanner->at + 1] != 'u')
                return fail(scanner, "unpaired surrogate");
            scanner->at += 2;
            if (!hex4(scanner, &low))
                return false;
            if (low < 0xDC00 || low >= 0xE000)
                return fail(scanner, "unpaired surrogate");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        }
        break;
    default:
        scanner->at--;
        return fail(scanner, "invalid escape");
    }
    sink_put_code_point(sink, code);
    return true;
}

/* Reads the string literal at the scanner (its opening quote) and puts its
 * decoded bytes into `sink` (which may be NULL). Decoded, a string is never
 * longer than its literal. */
static bool string(struct scanner *scanner, struct sink *sink)
{
    scanner->at++;
    size_t run = scanner->at; /* bytes taken as they are, from here */
    for (;;) {
        if (at_end(scanner))
            return fail(scanner, "unterminated string");
        unsigned char c = peek(scanner);
        if (c == '"' || c == '\\') {
            sink_put(sink, scanner->text + run, scanner->at - run);
            scanner->at++;
            if (c == '"')
                return true;
            if (!escape(scanner, sink))
                return false;
            run = scanner->at;
            continue;
        }
        if (c < 0x20)
            return fail(scanner, "control character in a string");
        scanner->at++;
    }
}

static bool literal(struct scanner *scanner, const char *word)
{
    size_t length = strlen(word);
    if (scanner->length - scanner->at < length ||
        memcmp(scanner->text + scanner->at, word, length) != 0)
        return fail(scanner, "invalid literal");
    scanner->at += length;
    return true;
}

static bool digits(struct scanner *scanner)
{
    size_t start = scanner->at;
    while (!at_end(scanner) && is_digit(peek(scanner)))
        scanner->at++;
    return scanner->at > start;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool number(struct scanner *scanner)
{
    if (peek(scanner) == '-')
        scanner->at++;
    if (at_end(scanner) || !is_digit(peek(scanner)))
        return fail(scanner, "invalid number");
    if (peek(scanner) == '0')
        scanner->at++;
    else
        (void)digits(scanner);
    if (!at_end(scanner) && peek(scanner) == '.') {
        scanner->at++;
        if (!digits(scanner))
            return fail(scanner, "invalid number");
    }
    if (!at_end(scanner) && (peek(scanner) == 'e' || peek(scanner) == 'E')) {
        scanner->at++;
        if (!at_end(scanner) && (peek(scanner) == '+' || peek(scanner) == '-'))
            scanner->at++;
        if (!digits(scanner))
            return fail(scanner, "invalid number");
    }
    return true;
}

/* Reads `"key" :` and the blanks around it. */
static bool member_key(struct scanner *scanner)
{
    skip_blanks(scanner);
    if (at_end(scanner) || peek(scanner) != '"')
        return fail(scanner, "expected a string key");
    if (!string(scanner, NULL))
        return false;
    skip_blanks(scanner);
    if (at_end(scanner) || peek(scanner) != ':')
        return fail(scanner, "expected ':'");
    scanner->at++;
    return true;
}

/* Reads a scalar value (string, number, true, false, null). */
static bool scalar(struct scanner *scanner)
{
    unsigned char c = peek(scanner);
    if (c == '"')
        return string(scanner, NULL);
    if (c == 't')
        return literal(scanner, "true");
    if (c == 'f')
        return literal(scanner, "false");
    if (c == 'n')
        return literal(scanner, "null");
    if (c == '-' || is_digit(c))
        return number(scanner);
    return fail(scanner, "unexpected character");
}

/* Skips the value at the scanner, whatever it nests, in one loop: bit d of
 * `objects` says whether the container open at depth d is an object. */
static bool skip_value(struct scanner *scanner)
{
    uint64_t objects = 0;
    unsigned depth = 0;
    for (;;) {
        /* A value. */
        skip_blanks(scanner);
        if (at_end(scanner))
            return fail(scanner, "unexpected end of input");
        unsigned char c = peek(scanner);
        if (c == '{' || c == '[') {
            if (depth == NESTED_MAX)
                return fail(scanner, "nested too deeply");
            bool object = c == '{';
            objects = (objects & ~(UINT64_C(1) << depth)) | (uint64_t)object << depth;
            depth++;
            scanner->at++;
            skip_blanks(scanner);
            if (at_end(scanner) || peek(scanner) != (object ? '}' : ']')) {
                if (object && !member_key(scanner))
                    return false;
                continue; /* to the container's first value */
            }
            scanner->at++;
            depth--;
        } else if (!scalar(scanner)) {
            return false;
        }
        /* After a value: close what ends here, then on to the next value. */
        for (;;) {
            if (depth == 0)
                return true;
            skip_blanks(scanner);
            if (at_end(scanner))
                return fail(scanner, "unexpected end of input");
            bool object = objects >> (depth - 1) & 1;
            c = peek(scanner);
            if (c == ',') {
                scanner->at++;
                if (object && !member_key(scanner))
                    return false;
                break;
            }
            if (c != (object ? '}' : ']'))
                return fail(scanner, object ? "expected ',' or '}'" : "expected ',' or ']'");
            scanner->at++;
            depth--;
        }
    }
}

int item_json_scan(const char *text, size_t length, struct item_json_member **members,
                   size_t *count, struct item_json_error *error)
{
    *members = NULL;
    *count = 0;
    *error = (struct item_json_error){0};
    struct scanner scanner = {(const unsigned char *)text, length, 0, error};
    skip_blanks(&scanner);
    if (at_end(&scanner) || (peek(&scanner) != '{' && peek(&scanner) != '['))
        return ITEM_JSON_OTHER;
    bool object = peek(&scanner) == '{';
    unsigned char close = object ? '}' : ']';
    scanner.at++;
    struct item_json_member *found = NULL;
    size_t used = 0;
    size_t capacity = 0;
    skip_blanks(&scanner);
    if (!at_end(&scanner) && peek(&scanner) == close) {
        scanner.at++;
    } else {
        for (;;) {
            struct item_json_member member = {{0, 0}, {0, 0}};
            skip_blanks(&scanner);
            if (object) {
                if (at_end(&scanner) || peek(&scanner) != '"') {
                    fail(&scanner, "expected a string key");
                    goto malformed;
                }
                member.key.start = scanner.at;
                if (!string(&scanner, NULL))
                    goto malformed;
                member.key.length = scanner.at - member.key.start;
                skip_blanks(&scanner);
                if (at_end(&scanner) || peek(&scanner) != ':') {
                    fail(&scanner, "expected ':'");
                    goto malformed;
                }
                scanner.at++;
                skip_blanks(&scanner);
            }
            member.value.start = scanner.at;
            if (!skip_value(&scanner))
                goto malformed;
            member.value.length = scanner.at - member.value.start;
            if (used == capacity) {
                capacity = capacity ? capacity * 2 : 16;
                struct item_json_member *grown = realloc(found, capacity * sizeof *grown);
                if (grown == NULL) {
                    free(found);
                    return -1;
                }
                found = grown;
            }
            found[used++] = member;
            skip_blanks(&scanner);
            if (at_end(&scanner)) {
                fail(&scanner, "unexpected end of input");
                goto malformed;
            }
            unsigned char c = peek(&scanner);
            if (c != ',' && c != close) {
                fail(&scanner, object ? "expected ',' or '}'" : "expected ',' or ']'");
                goto malformed;
            }
            scanner.at++;
            if (c == close)
                break;
        }
    }
    skip_blanks(&scanner);
    if (!at_end(&scanner)) {
        fail(&scanner, "unexpected data after the value");
        goto malformed;
    }
    *members = found;
    *count = used;
    return object ? ITEM_JSON_OBJECT : ITEM_JSON_ARRAY;

malformed:
    free(found);
    return ITEM_JSON_OTHER;
}

bool item_json_key_equals(const char *text, const struct item_json_member *member,
                          const char *name, size_t name_length)
{
    struct item_json_error ignored;
    struct scanner scanner = {(const unsigned char *)text, member->key.start + member->key.length,
                              member->key.start, &ignored};
    struct sink sink = {.expect = name, .expect_length = name_length};
    /* The key was checked by item_json_scan(); the scan stops at its end. */
    return string(&scanner, &sink) && !sink.differs && sink.used == name_length;
}

char *item_json_value_text(const char *text, const struct item_json_member *member,
                           size_t *length)
{
    const struct item_json_span *value = &member->value;
    char *copy = malloc(value->length + 1);
    if (copy == NULL)
        return NULL;
    if (value->length > 0 && text[value->start] == '"') {
        struct item_json_error ignored;
        struct scanner scanner = {(const unsigned char *)text, value->start + value->length,
                                  value->start, &ignored};
        struct sink sink = {.out = copy};
        (void)string(&scanner, &sink);
        *length = sink.used;
    } else {
        memcpy(copy, text + value->start, value->length);
        *length = value->length;
    }
    copy[*length] = '\0';
    return copy;
}
