/* main.c — the tollgate command line (DESIGN §3).
 *
 *   tollgate [--config FILE] [--check-config [FILE]] [--threads N] [--version] [--help]
 *   tollgate hash-key --id ID KEY
 *   tollgate gen-key --id ID [--scopes a,b] [--tier T]
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

#define TOLLGATE_VERSION "0.1.0"

enum { EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_START = 3 };

static void usage(FILE *f)
{
    fprintf(f, "usage: tollgate [--config FILE] [--check-config [FILE]] [--threads N]\n"
               "                [--version] [--help]\n"
               "       tollgate hash-key --id ID KEY\n"
               "       tollgate gen-key --id ID [--scopes a,b] [--tier T]\n"
               "\n"
               "The config file defaults to $TOLLGATE_CONFIG; without either, built-in\n"
               "defaults and the environment are used (see docs/configuration.md).\n");
}

/* hash-key / gen-key: print a line for the API key file. */
static int key_command(int argc, char **argv, bool generate)
{
    static const struct option opts[] = {
        {"id", required_argument, NULL, 'i'},
        {"scopes", required_argument, NULL, 's'},
        {"tier", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    const char *id = NULL, *scopes = NULL, *tier = NULL, *key;
    char line[1024], fresh[128];
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            id = optarg;
            break;
        case 's':
            scopes = optarg;
            break;
        case 't':
            tier = optarg;
            break;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (id == NULL || (generate ? optind != argc : optind != argc - 1)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (generate) {
        if (auth_apikey_generate(fresh, sizeof(fresh)) != 0) {
            fprintf(stderr, "tollgate: cannot generate a key\n");
            return EXIT_START;
        }
        key = fresh;
    } else {
        key = argv[optind];
    }
    if (auth_apikey_format_line(id, key, scopes, tier, line, sizeof(line)) != 0) {
        fprintf(stderr, "tollgate: invalid --id, --scopes or --tier\n");
        return EXIT_USAGE;
    }
    if (generate)
        printf("key:  %s\nline: %s\n", key, line);
    else
        printf("%s\n", line);
    OPENSSL_cleanse(fresh, sizeof(fresh));
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},  {"check-config", no_argument, NULL, 'k'},
        {"threads", required_argument, NULL, 'T'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *path = getenv("TOLLGATE_CONFIG");
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
    while ((c = getopt_long(argc, argv, "c:T:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = true;
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
        printf("%s: ok (config version %s)\n", path ? path : "(built-in defaults)",
               cfg->version);
        cfg_unref(cfg);
        return 0;
    }
    s = srv_new(path, cfg, threads, err, sizeof(err));
    if (s == NULL) {
        log_error("cannot start: %s", err);
        return EXIT_START;
    }
    rc = srv_run(s);
    srv_free(s);
    return rc;
}
