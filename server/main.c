/* main.c — the tollgate command line (docs/reference.md §1).
 *
 *   tollgate [--config FILE] [--check-config [FILE]] [--threads N]
 *            [--port-file PATH] [--version] [--help]
 *   tollgate hash-key --id ID [--not-after TIME] KEY
 *   tollgate gen-key --id ID [--scopes a,b] [--tier T] [--not-after TIME]
 *                    [--keys-file FILE]
 *   tollgate replay --config CANDIDATE [--json] [--max-deny-increase N|N%]
 *                   AUDIT.LOG...            (server/replay.c)
 *
 * Exit codes: 0 ok, 1 config error, 2 usage, 3 runtime start failure.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include <openssl/crypto.h>

#include "tollgate/auth_apikey.h"
#include "tollgate/cfg.h"
#include "tollgate/log.h"
#include "tollgate/srv.h"
#include "srv_replay.h"

enum { EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_START = 3 };

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: tollgate [--config FILE] [--check-config [FILE]] [--threads N]\n"
        "                [--port-file PATH] [--version] [--help]\n"
        "       tollgate hash-key --id ID [--scopes a,b] [--tier T] [--not-after TIME] "
        "KEY\n"
        "       tollgate gen-key --id ID [--scopes a,b] [--tier T] [--not-after TIME]\n"
        "                        [--keys-file FILE]\n"
        "       tollgate replay --config CANDIDATE [--json] [--max-deny-increase N|N%%]\n"
        "                       AUDIT.LOG...\n"
        "\n"
        "The config file defaults to $TOLLGATE_CONFIG; without either, built-in\n"
        "defaults and the environment are used (see docs/configuration.md).\n");
}

typedef struct key_args {
    const char *id, *scopes, *tier, *not_after, *keys_file;
} key_args_t;

/* --keys-file: a rotation.  When `id` already has keys there, the new line
 * takes the scopes and tier of its first one (unless given), so the client
 * keeps one identity; a note on stderr says what to do next. */
static int key_inherit(key_args_t *a, auth_keystore_t **ks)
{
    char err[512];
    const auth_apikey_t *k, *first;
    size_t n = 0;

    *ks = auth_keystore_new();
    if (*ks == NULL || auth_keystore_load_file(*ks, a->keys_file, err, sizeof err) != 0) {
        fprintf(stderr, "tollgate: %s\n", *ks == NULL ? "out of memory" : err);
        return EXIT_CONFIG;
    }
    first = auth_keystore_find_id(*ks, a->id);
    for (k = first; k != NULL; k = auth_keystore_next_of_id(*ks, k))
        n++;
    if (first == NULL) {
        fprintf(stderr, "tollgate: note: id %s is new in %s\n", a->id, a->keys_file);
        return 0;
    }
    if (a->scopes == NULL && first->nscopes > 0) {
        static char buf[1024];
        size_t used = 0;

        for (size_t i = 0; i < first->nscopes; i++)
            used += (size_t)snprintf(buf + used, used < sizeof buf ? sizeof buf - used : 0,
                                     "%s%s", i > 0 ? "," : "", first->scopes[i]);
        if (used >= sizeof buf)
            return EXIT_USAGE;
        a->scopes = buf;
    }
    if (a->tier == NULL)
        a->tier = first->tier;
    fprintf(stderr,
            "tollgate: note: id %s has %zu key(s) in %s: append this line (same id, "
            "same buckets), reload, move the client to the new key, then add "
            "not_after=YYYY-MM-DDTHH:MM:SSZ to the old line (or remove it)\n",
            a->id, n, a->keys_file);
    return 0;
}

static int key_opts(int argc, char **argv, key_args_t *a)
{
    static const struct option opts[] = {
        {"id", required_argument, NULL, 'i'},
        {"scopes", required_argument, NULL, 's'},
        {"tier", required_argument, NULL, 't'},
        {"not-after", required_argument, NULL, 'n'},
        {"keys-file", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            a->id = optarg;
            break;
        case 's':
            a->scopes = optarg;
            break;
        case 't':
            a->tier = optarg;
            break;
        case 'n':
            a->not_after = optarg;
            break;
        case 'f':
            a->keys_file = optarg;
            break;
        default:
            return -1;
        }
    }
    return 0;
}

/* hash-key / gen-key: print a line for the API key file. */
static int key_command(int argc, char **argv, bool generate)
{
    key_args_t a = {0};
    auth_keystore_t *ks = NULL;
    const char *key;
    char line[1200], fresh[128];
    int64_t t;
    int rc;

    if (key_opts(argc, argv, &a) != 0 || a.id == NULL ||
        (generate ? optind != argc : optind != argc - 1) ||
        (!generate && a.keys_file != NULL)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (a.not_after != NULL &&
        auth_apikey_parse_time(a.not_after, strlen(a.not_after), &t) != 0) {
        fprintf(stderr, "tollgate: --not-after: expected YYYY-MM-DDTHH:MM:SSZ (UTC)\n");
        return EXIT_USAGE;
    }
    if (a.keys_file != NULL && (rc = key_inherit(&a, &ks)) != 0)
        goto out;
    rc = EXIT_START;
    if (generate && auth_apikey_generate(fresh, sizeof(fresh)) != 0) {
        fprintf(stderr, "tollgate: cannot generate a key\n");
        goto out;
    }
    key = generate ? fresh : argv[optind];
    rc = EXIT_USAGE;
    if (auth_apikey_format_line(a.id, key, a.scopes, a.tier, line, sizeof(line)) != 0 ||
        (a.not_after != NULL && strlen(line) + 11 + strlen(a.not_after) >= sizeof line)) {
        fprintf(stderr, "tollgate: invalid --id, --scopes or --tier\n");
        goto out;
    }
    if (a.not_after != NULL)
        strcat(strcat(line, " not_after="), a.not_after);
    if (generate)
        printf("key:  %s\nline: %s\n", key, line);
    else
        printf("%s\n", line);
    rc = 0;
out:
    OPENSSL_cleanse(fresh, sizeof(fresh));
    auth_keystore_free(ks);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"threads", required_argument, NULL, 'T'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {"port-file", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    const char *path = getenv("TOLLGATE_CONFIG");
    const char *port_file = NULL;
    bool check = false;
    unsigned threads = 0;
    char err[8192];
    cfg_t *cfg;
    srv_t *s;
    int c, rc;

    if (argc > 1 && strcmp(argv[1], "hash-key") == 0)
        return key_command(argc - 1, argv + 1, false);
    if (argc > 1 && strcmp(argv[1], "gen-key") == 0)
        return key_command(argc - 1, argv + 1, true);
    if (argc > 1 && strcmp(argv[1], "replay") == 0)
        return srv_replay_main(argc - 1, argv + 1);
    while ((c = getopt_long(argc, argv, "c:T:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = true;
            break;
        case 'p':
            if (*optarg == '\0') {
                fprintf(stderr, "tollgate: --port-file needs a path\n");
                return EXIT_USAGE;
            }
            port_file = optarg;
            break;
        case 'T': {
            char *end;
            long n = strtol(optarg, &end, 10);

            if (*end != '\0' || n < 1 || n > 256) {
                fprintf(stderr, "tollgate: --threads must be 1..256\n");
                return EXIT_USAGE;
            }
            threads = (unsigned)n;
            break;
        }
        case 'V':
            printf("tollgate %s\n", TOLLGATE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (check && optind == argc - 1)
        path = argv[optind++]; /* `--check-config FILE` */
    if (optind != argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    /* Secrets live in this process's memory: no core dumps of it. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    err[0] = '\0';
    cfg = cfg_load(path, err, sizeof(err));
    if (cfg == NULL) {
        fputs(err, stderr);
        if (err[0] != '\0' && err[strlen(err) - 1] != '\n')
            fputc('\n', stderr);
        return EXIT_CONFIG;
    }
    if (check) {
        printf("%s: ok (config version %s, secrets version %s)\n",
               path ? path : "(built-in defaults)", cfg->version, cfg->secrets_version);
        cfg_unref(cfg);
        return 0;
    }
    s = srv_new(path, cfg, threads, err, sizeof(err));
    if (s == NULL) {
        log_error("cannot start: %s", err);
        return EXIT_START;
    }
    /* After both listeners are bound, before serving: a supervisor or a test
     * reads the ports the kernel picked for a port 0 (docs/reference.md). */
    if (port_file != NULL && srv_write_port_file(s, port_file, err, sizeof(err)) != 0) {
        log_error("cannot start: %s", err);
        srv_free(s);
        return EXIT_START;
    }
    rc = srv_run(s);
    srv_free(s);
    return rc;
}
