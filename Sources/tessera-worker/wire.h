/*
 * wire.h - byte buffers and the field encodings of tessera_wire.h.
 *
 * The daemon <-> worker frames are sequences of little-endian integers and
 * length-prefixed strings. This file exists so that the zygote never
 * touches those bytes by hand: it appends fields to a growable buffer to
 * build a frame, and reads fields through a bounds-checked reader whose
 * errors are sticky, so a frame is parsed field by field and checked once
 * at the end.
 */
#ifndef TESSERA_WORKER_WIRE_H
#define TESSERA_WORKER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer. All zero is a valid empty buffer. Its memory is
 * not inherited by forked children (wiped.h): buffers carry frames, output
 * and results, which belong to no microtask but their own. */
struct buf {
    unsigned char *data;
    size_t length;
    size_t capacity;
};

/* Makes room for `extra` more bytes after `length` (fatal on exhaustion). */
void buf_reserve(struct buf *buffer, size_t extra);
void buf_append(struct buf *buffer, const void *data, size_t length);
/* Drops the first `count` bytes. */
void buf_consume(struct buf *buffer, size_t count);
/* Empties the buffer, and gives its memory back when it holds more than
 * `keep` bytes of capacity. */
void buf_reset(struct buf *buffer, size_t keep);
void buf_free(struct buf *buffer);

void wire_put_u8(struct buf *buffer, uint8_t value);
void wire_put_u32(struct buf *buffer, uint32_t value);
void wire_put_i32(struct buf *buffer, int32_t value);
void wire_put_u64(struct buf *buffer, uint64_t value);
void wire_put_f64(struct buf *buffer, double value);
void wire_put_str(struct buf *buffer, const void *data, size_t length);

/* Starts a frame of `type` and returns where it starts; wire_end_frame()
 * fills in its length once every field has been appended. */
size_t wire_begin_frame(struct buf *buffer, uint8_t type);
void wire_end_frame(struct buf *buffer, size_t start);

/* Reads the u32 at `data` (the length prefix of a frame). */
uint32_t wire_peek_u32(const unsigned char *data);

/* A cursor over the fields of one received frame. Reading past the end
 * marks the reader malformed and yields zeros from then on. */
struct wire_reader {
    const unsigned char *cursor;
    size_t left;
    bool malformed;
};

uint8_t wire_get_u8(struct wire_reader *reader);
uint32_t wire_get_u32(struct wire_reader *reader);
uint64_t wire_get_u64(struct wire_reader *reader);
/* Returns a pointer into the frame (not NUL-terminated) and its length. */
const char *wire_get_str(struct wire_reader *reader, uint32_t *length);
/* True when every field was read and nothing is left over. */
bool wire_reader_complete(const struct wire_reader *reader);

#endif /* TESSERA_WORKER_WIRE_H */
