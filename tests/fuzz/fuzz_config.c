/* fuzz_config.c — libFuzzer target for the configuration loader.
 *
 * Every input is a YAML file given to cfg_load_string.  The environment is
 * cleared once, except for one API key so that inputs which pass every
 * check reach the runtime objects, the version and cfg_dump_json (whose
 * output must be JSON).  Nothing may crash or leak, accepted or not.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tollgate/cfg.h"
#include "tollgate/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{

    (void)argc;
    (void)argv;
    for (size_t i = 0; cfg_env_names[i] != NULL; i++)
        unsetenv(cfg_env_names[i]);
    setenv("ALLOWED_API_KEYS", "fuzz-api-key-0123456789", 1);
    log_set_level(LOG_ERROR); /* dropped origins etc. would flood the output */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[4096];
    cfg_t *c;
    char *dump;
    json_t *j;

    if (size > 256 * 1024)
        return 0;
    c = cfg_load_string((const char *)data, size, "fuzz.yaml", err, sizeof err);
    if (c == NULL) {
        if (err[0] == '\0' || strchr(err, '\n') == NULL)
            abort(); /* a refused input always says why, one line per problem */
        return 0;
    }
    if (strlen(c->version) != 16)
        abort();
    dump = cfg_dump_json(c);
    if (dump != NULL) {
        j = json_loads(dump, 0, NULL);
        if (j == NULL)
            abort();
        json_decref(j);
        free(dump);
    }
    cfg_unref(cfg_ref(c));
    cfg_unref(c);
    return 0;
}
