/*
 * checksum.c - the "checksum" plugin: its executor "checksum" stores the
 * SHA-256 of a file.
 *
 * The microtask's item is a file path; the result is
 * {"path": ..., "sha256": ..., "bytes": N}: the path as given, the digest
 * in lower-case hexadecimal and the number of bytes read. The file is read
 * `buffer_size` bytes at a time (kept between 512 bytes and 16 MiB). When
 * the file cannot be opened or read, the error is logged and the executor
 * fails. SHA-256 (FIPS 180-4) is implemented here, so that the plugin
 * needs no library beyond the C library. The test suite's Swift plugin
 * (Tests/Plugins/swiftchecksum) does the same as its "swift_checksum".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tessera/plugin.h>

#define DEFAULT_BUFFER_SIZE 65536
#define MIN_BUFFER_SIZE 512
#define MAX_BUFFER_SIZE (16 << 20)

/* SHA-256 (FIPS 180-4), streaming. */

typedef struct sha256 {
    uint32_t state[8];
    uint64_t length;            /* bytes given to sha256_update */
    unsigned char pending[64];  /* the start of a block not yet compressed */
    size_t pending_length;
} sha256;

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_init(sha256 *hash)
{
    static const uint32_t initial[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memcpy(hash->state, initial, sizeof initial);
    hash->length = 0;
    hash->pending_length = 0;
}

/* Processes one 64-byte block. */
static void sha256_compress(sha256 *hash, const unsigned char *block)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
               (uint32_t)block[4 * i + 2] << 8 | (uint32_t)block[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = hash->state[0], b = hash->state[1], c = hash->state[2], d = hash->state[3];
    uint32_t e = hash->state[4], f = hash->state[5], g = hash->state[6], h = hash->state[7];
    for (int i = 0; i < 64; i++) {
        uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + s1 + ch + sha256_k[i] + w[i];
        uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = s0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    hash->state[0] += a;
    hash->state[1] += b;
    hash->state[2] += c;
    hash->state[3] += d;
    hash->state[4] += e;
    hash->state[5] += f;
    hash->state[6] += g;
    hash->state[7] += h;
}

static void sha256_update(sha256 *hash, const unsigned char *data, size_t length)
{
    hash->length += length;
    if (hash->pending_length > 0) {
        size_t take = 64 - hash->pending_length;
        if (take > length)
            take = length;
        memcpy(hash->pending + hash->pending_length, data, take);
        hash->pending_length += take;
        data += take;
        length -= take;
        if (hash->pending_length < 64)
            return;
        sha256_compress(hash, hash->pending);
        hash->pending_length = 0;
    }
    for (; length >= 64; data += 64, length -= 64)
        sha256_compress(hash, data);
    memcpy(hash->pending, data, length);
    hash->pending_length = length;
}

/* Pads the message, compresses what is left and writes the 32-byte digest. */
static void sha256_finish(sha256 *hash, unsigned char digest[32])
{
    uint64_t bits = hash->length * 8;
    unsigned char *tail = hash->pending;
    size_t used = hash->pending_length;
    tail[used++] = 0x80;
    if (used > 56) {
        memset(tail + used, 0, 64 - used);
        sha256_compress(hash, tail);
        used = 0;
    }
    memset(tail + used, 0, 56 - used);
    for (int i = 0; i < 8; i++)
        tail[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_compress(hash, tail);
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (unsigned char)(hash->state[i] >> 24);
        digest[4 * i + 1] = (unsigned char)(hash->state[i] >> 16);
        digest[4 * i + 2] = (unsigned char)(hash->state[i] >> 8);
        digest[4 * i + 3] = (unsigned char)hash->state[i];
    }
}

/* The executor. */

/* Logs "<what> <path>: <errno text>" at error level. */
static void log_error(const tessera_host *host, tessera_task *task, const char *what, const char *path)
{
    if (host->log == NULL)
        return;
    const char *reason = strerror(errno);
    char *line;
    if (asprintf(&line, "%s %s: %s", what, path, reason) >= 0) {
        host->log(task, TESSERA_LOG_ERROR, line);
        free(line);
    } else {
        char short_line[512];
        snprintf(short_line, sizeof short_line, "%s %s: %s", what, path, reason);
        host->log(task, TESSERA_LOG_ERROR, short_line);
    }
}

/* Writes `text` as the body of a JSON string: quotes and backslashes are
 * escaped, control characters written as \u00XX; other bytes (the item is
 * UTF-8 text) are copied. `out` has room for 6 bytes per byte of `text`.
 * Returns the end of what was written. */
static char *json_escape(char *out, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            *out++ = '\\';
            *out++ = (char)*p;
        } else if (*p < 0x20) {
            out += sprintf(out, "\\u%04x", *p);
        } else {
            *out++ = (char)*p;
        }
    }
    return out;
}

static int checksum_execute(const tessera_host *host, tessera_task *task)
{
    const char *path = host != NULL && host->item != NULL ? host->item(task) : NULL;
    if (path == NULL)
        return TESSERA_FAILED;
    int64_t buffer_size = DEFAULT_BUFFER_SIZE;
    if (host->param_integer != NULL)
        host->param_integer(task, "buffer_size", &buffer_size);
    if (buffer_size < MIN_BUFFER_SIZE)
        buffer_size = MIN_BUFFER_SIZE;
    if (buffer_size > MAX_BUFFER_SIZE)
        buffer_size = MAX_BUFFER_SIZE;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_error(host, task, "cannot open", path);
        return TESSERA_FAILED;
    }
    unsigned char *buffer = malloc((size_t)buffer_size);
    if (buffer == NULL) {
        log_error(host, task, "cannot allocate a buffer to read", path);
        close(fd);
        return TESSERA_FAILED;
    }
    sha256 hash;
    sha256_init(&hash);
    uint64_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buffer, (size_t)buffer_size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error(host, task, "cannot read", path);
            free(buffer);
            close(fd);
            return TESSERA_FAILED;
        }
        if (n == 0)
            break;
        sha256_update(&hash, buffer, (size_t)n);
        total += (uint64_t)n;
    }
    free(buffer);
    close(fd);

    unsigned char digest[32];
    sha256_finish(&hash, digest);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);

    /* {"path":"…","sha256":"…","bytes":N}: 6 bytes at most per byte of the
     * path, and room for the rest. */
    char *result = malloc(6 * strlen(path) + sizeof hex + 64);
    if (result == NULL) {
        log_error(host, task, "cannot allocate the result for", path);
        return TESSERA_FAILED;
    }
    char *end = stpcpy(result, "{\"path\":\"");
    end = json_escape(end, path);
    end += sprintf(end, "\",\"sha256\":\"%s\",\"bytes\":%" PRIu64 "}", hex, total);
    if (host->set_result != NULL)
        host->set_result(task, result, (size_t)(end - result));
    return TESSERA_OK;
}

static const tessera_param checksum_params[] = {
    {
        .name = "buffer_size",
        .type = TESSERA_PARAM_INTEGER,
        .required = 0,
        .default_value = "65536",
        .description = "Bytes read at a time.",
    },
};

static const tessera_executor checksum_executors[] = {
    {
        .name = "checksum",
        .description = "Stores the SHA-256 of the file named by the item as the result.",
        .params = checksum_params,
        .param_count = sizeof checksum_params / sizeof checksum_params[0],
        .execute = checksum_execute,
    },
};

static const tessera_plugin checksum_plugin = {
    .abi_major = TESSERA_ABI_MAJOR,
    .abi_minor = TESSERA_ABI_MINOR,
    .name = "checksum",
    .version = "1.0",
    .description = "File checksums.",
    .executors = checksum_executors,
    .executor_count = sizeof checksum_executors / sizeof checksum_executors[0],
};

const tessera_plugin *tessera_plugin_init(const tessera_host *host)
{
    (void)host;
    return &checksum_plugin;
}
