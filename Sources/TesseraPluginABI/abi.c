/* The plugin ABI target exists to ship include/tessera/plugin.h; it has no code. */
