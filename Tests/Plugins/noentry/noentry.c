/*
 * noentry.c - a test shared library that loads fine but exports no
 * tessera_plugin_init. The worker must refuse it as having no entry point.
 * It deliberately does not include the plugin header.
 */

int noentry_answer(void);

int noentry_answer(void)
{
    return 42;
}
