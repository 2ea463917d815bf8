# tollgate container image.
#
#   docker build -t tollgate .                         (or podman / buildah bud)
#   scripts/image.sh build                             daemonless, local base images
#
# The bases are overridable so the image builds from a local base when no
# registry is reachable (scripts/image.sh passes localhost/debian:bookworm and
# localhost/debian:bookworm-slim, made with debootstrap).
#
# The runtime image holds the binary, the shared libraries it links and
# ca-certificates; it runs as 10001:10001, writes nothing (audit log on
# stdout), and reads:
#   /etc/tollgate/config/tollgate.yaml   config (Kubernetes: a ConfigMap mounted
#                                        as this directory, which hides the
#                                        default below)
#   /etc/tollgate/secrets/*              Secret files named by *_FILE variables
#
# The default config is config/tollgate.yaml (the `make run` demo) listening on
# 0.0.0.0 with the demo API key file (SHA-256 digests of two keys that are
# public on purpose, see config/demo-api-keys): `docker run -p 8080:8080
# -p 9090:9090 tollgate` gives the README tour.  DEVELOPMENT ONLY; the Helm
# chart and k8s/ always mount their own config, which never names that file.
#
# scripts/check-dockerfile.sh checks this file statically (runtime packages =
# what `ldd build/tollgate` needs, numeric USER, ENTRYPOINT, no secrets).

ARG BASE=debian:bookworm
ARG RUNTIME_BASE=debian:bookworm-slim

# ---------------------------------------------------------------- build ----
FROM ${BASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
# The -dev packages of the Makefile's PKGS (pkg-config modules libevent,
# libevent_openssl, libevent_pthreads, hiredis, openssl, jansson, libcurl,
# libjwt, yaml-0.1); scripts/deps.sh lists the same plus the test tools.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config \
      libevent-dev libhiredis-dev libssl-dev libjansson-dev libjwt-dev libyaml-dev \
      libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY Makefile ./
COPY scripts/embed-lua.sh scripts/
COPY include include
COPY util util
COPY auth auth
COPY limiter limiter
COPY http http
COPY redis redis
COPY cfg cfg
COPY decide decide
COPY server server
COPY lua lua
COPY config/tollgate.yaml config/demo-api-keys config/

# `make` = `make all` = build/tollgate; BUILD=/build keeps it out of /src.
RUN make BUILD=/build -j"$(nproc)" all \
 && /build/tollgate --version

# Everything the runtime stage copies is staged under /out.  The default
# config: the demo config with container addresses, threads from the CPU count
# (or --threads), the demo key file at an absolute path.  Each edit is checked,
# then the result is validated by the binary itself.
RUN set -eu; \
    mkdir -p /out/usr/local/bin /out/etc/tollgate/config /out/etc/tollgate/secrets /out/usr/share/tollgate; \
    install -m 0755 /build/tollgate /out/usr/local/bin/tollgate; \
    install -m 0644 config/demo-api-keys /out/usr/share/tollgate/demo-api-keys; \
    { echo '# tollgate image default (DEVELOPMENT ONLY): config/tollgate.yaml of the source tree'; \
      echo '# with listen/admin_listen on 0.0.0.0, threads from --threads or the CPU count and'; \
      echo '# the demo API keys.  Mount your own config at /etc/tollgate/config/.'; \
      sed -e 's|^listen: .*|listen: "0.0.0.0:8080"|' \
          -e 's|^admin_listen: .*|admin_listen: "0.0.0.0:9090"|' \
          -e '/^threads:/d' \
          -e 's|api_keys_file: config/demo-api-keys|api_keys_file: /usr/share/tollgate/demo-api-keys|' \
          config/tollgate.yaml; } > /out/etc/tollgate/config/tollgate.yaml; \
    cfg=/out/etc/tollgate/config/tollgate.yaml; \
    grep -qx 'listen: "0.0.0.0:8080"' "$cfg"; \
    grep -qx 'admin_listen: "0.0.0.0:9090"' "$cfg"; \
    if grep -q '^threads:' "$cfg"; then echo "threads: still set" >&2; exit 1; fi; \
    grep -q '^  api_keys_file: /usr/share/tollgate/demo-api-keys' "$cfg"; \
    grep -q '^  path: "-"' "$cfg"; \
    mkdir -p /usr/share/tollgate && cp /out/usr/share/tollgate/demo-api-keys /usr/share/tollgate/; \
    /build/tollgate --check-config --config "$cfg"; \
    chmod 0644 "$cfg"; \
    chmod 0755 /out/etc/tollgate /out/etc/tollgate/config /out/etc/tollgate/secrets

# -------------------------------------------------------------- runtime ----
FROM ${RUNTIME_BASE}
ARG DEBIAN_FRONTEND=noninteractive
# Exactly the packages owning the libraries build/tollgate links directly (besides
# libc6, which is in every base), plus ca-certificates for rediss:// with the
# system store.  scripts/check-dockerfile.sh fails when this list drifts.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      libcurl4 \
      libevent-2.1-7 \
      libevent-openssl-2.1-7 \
      libhiredis0.14 \
      libjansson4 \
      libjwt0 \
      libssl3 \
      libyaml-0-2 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/log/apt /var/log/dpkg.log

COPY --from=build /out/ /

ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL org.opencontainers.image.title="tollgate" \
      org.opencontainers.image.description="Authentication and rate-limit tier (forward-auth / proxy)"

# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
# 8080 main listener (forward-auth, proxy), 9090 admin (health, metrics, admin API)
EXPOSE 8080 9090
ENTRYPOINT ["tollgate"]
CMD ["--config", "/etc/tollgate/config/tollgate.yaml"]
