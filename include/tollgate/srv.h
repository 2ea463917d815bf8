/* srv.h — the tollgate server process: worker threads, admin listener,
 * signals and live config reload (docs/operator-guide.md §3, docs/architecture.md §3). */
#ifndef TOLLGATE_SRV_H
#define TOLLGATE_SRV_H

#include <stddef.h>

#include "tollgate/cfg.h"

#define TOLLGATE_VERSION "0.1.0" /* --version, tollgate_build_info{version} */

typedef struct srv srv_t;

/* A server for `cfg` (takes over the caller's reference), re-reading
 * `config_path` (NULL: none) on SIGHUP, on change and on POST
 * /admin/v1/reload.  `threads` > 0 overrides cfg->threads.  Binds the
 * listeners; NULL with a message in err when that fails. */
srv_t *srv_new(const char *config_path, cfg_t *cfg, unsigned threads, char *err,
               size_t errlen);

/* Write the addresses `s` listens on, as bound (a port 0 in the config is
 * the port the kernel picked), to `path` as one JSON line:
 *   {"listen":"127.0.0.1:41234","admin":"127.0.0.1:41235"}
 * through a temp file beside it renamed over it (readers never see a part).
 * -1 with a message in err. */
int srv_write_port_file(const srv_t *s, const char *path, char *err, size_t errlen);

/* Serve until SIGTERM/SIGINT, then drain in-flight requests (bounded).
 * Returns the process exit code. */
int srv_run(srv_t *s);

void srv_free(srv_t *s);

#endif
