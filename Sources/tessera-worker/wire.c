/*
 * wire.c - byte buffers and the little-endian field encodings of
 * tessera_wire.h (see wire.h).
 */
#define _GNU_SOURCE
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "wiped.h"

void buf_reserve(struct buf *buffer, size_t extra)
{
    if (buffer->capacity - buffer->length >= extra)
        return;
    size_t wanted = buffer->capacity ? buffer->capacity : 4096;
    while (wanted - buffer->length < extra)
        wanted *= 2;
    buffer->data = wiped_resize(buffer->data, buffer->capacity, wanted, &buffer->capacity);
}

void buf_append(struct buf *buffer, const void *data, size_t length)
{
    if (length == 0)
        return;
    buf_reserve(buffer, length);
    memcpy(buffer->data + buffer->length, data, length);
    buffer->length += length;
}

void buf_consume(struct buf *buffer, size_t count)
{
    if (count == 0)
        return;
    buffer->length -= count;
    memmove(buffer->data, buffer->data + count, buffer->length);
}

void buf_reset(struct buf *buffer, size_t keep)
{
    if (buffer->capacity > keep)
        buf_free(buffer);
    buffer->length = 0;
}

void buf_free(struct buf *buffer)
{
    wiped_free(buffer->data, buffer->capacity);
    *buffer = (struct buf){0};
}

void wire_put_u8(struct buf *buffer, uint8_t value)
{
    buf_append(buffer, &value, 1);
}

void wire_put_u32(struct buf *buffer, uint32_t value)
{
    unsigned char bytes[4];
    for (int i = 0; i < 4; i++)
        bytes[i] = (unsigned char)(value >> (8 * i));
    buf_append(buffer, bytes, sizeof bytes);
}

void wire_put_i32(struct buf *buffer, int32_t value)
{
    wire_put_u32(buffer, (uint32_t)value);
}

void wire_put_u64(struct buf *buffer, uint64_t value)
{
    unsigned char bytes[8];
    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)(value >> (8 * i));
    buf_append(buffer, bytes, sizeof bytes);
}

void wire_put_f64(struct buf *buffer, double value)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    wire_put_u64(buffer, bits);
}

void wire_put_str(struct buf *buffer, const void *data, size_t length)
{
    wire_put_u32(buffer, (uint32_t)length);
    buf_append(buffer, data, length);
}

size_t wire_begin_frame(struct buf *buffer, uint8_t type)
{
    size_t start = buffer->length;
    wire_put_u32(buffer, 0);
    wire_put_u8(buffer, type);
    return start;
}

void wire_end_frame(struct buf *buffer, size_t start)
{
    uint32_t length = (uint32_t)(buffer->length - start - 4);
    for (int i = 0; i < 4; i++)
        buffer->data[start + (size_t)i] = (unsigned char)(length >> (8 * i));
}

uint32_t wire_peek_u32(const unsigned char *data)
{
    return (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
           (uint32_t)data[3] << 24;
}

/* Returns the next `count` bytes of the frame, or NULL (and marks the reader
 * malformed) when fewer are left. */
static const unsigned char *take(struct wire_reader *reader, size_t count)
{
    if (reader->malformed || reader->left < count) {
        reader->malformed = true;
        return NULL;
    }
    const unsigned char *bytes = reader->cursor;
    reader->cursor += count;
    reader->left -= count;
    return bytes;
}

uint8_t wire_get_u8(struct wire_reader *reader)
{
    const unsigned char *bytes = take(reader, 1);
    return bytes ? bytes[0] : 0;
}

uint32_t wire_get_u32(struct wire_reader *reader)
{
    const unsigned char *bytes = take(reader, 4);
    return bytes ? wire_peek_u32(bytes) : 0;
}

uint64_t wire_get_u64(struct wire_reader *reader)
{
    const unsigned char *bytes = take(reader, 8);
    if (bytes == NULL)
        return 0;
    return (uint64_t)wire_peek_u32(bytes) | (uint64_t)wire_peek_u32(bytes + 4) << 32;
}

const char *wire_get_str(struct wire_reader *reader, uint32_t *length)
{
    *length = wire_get_u32(reader);
    const unsigned char *bytes = take(reader, *length);
    if (bytes == NULL)
        *length = 0;
    return bytes ? (const char *)bytes : "";
}

bool wire_reader_complete(const struct wire_reader *reader)
{
    return !reader->malformed && reader->left == 0;
}
