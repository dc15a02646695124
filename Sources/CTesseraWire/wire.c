/* The wire target exists to share include/tessera_wire.h; it has no code. */
