// Assertions over the rendered Kubernetes objects (node:test; run by
// scripts/lint-k8s.sh, which sets the environment):
//
//   RENDER_DIR  the renders of scripts/lint-k8s.sh: helm-*.yaml (the chart with
//               default values and each values file), kustomize-*.yaml (base
//               and overlays). Every Deployment assertion runs on each.
//   HELM        helm binary, CHART the chart directory (default helm/tollgate):
//               the tests below render the chart again with changed values.
//
// Written in node rather than Python: python3-yaml is not among the project's
// packages, and the validator's npm install already brings a YAML parser.
"use strict";

const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const path = require("path");
const lib = require("./lib.js");

const RENDER_DIR = process.env.RENDER_DIR;
const HELM = process.env.HELM || "helm";
const CHART = process.env.CHART || path.join(lib.root, "helm", "tollgate");
const HERE = __dirname;

if (!RENDER_DIR) throw new Error("RENDER_DIR is not set (run scripts/lint-k8s.sh)");

function helmTemplate(args, release = "tollgate") {
  const r = lib.run(HELM, ["template", release, CHART, "--namespace", "tollgate", ...args]);
  return { ok: r.status === 0, stderr: r.stderr, docs: r.status === 0 ? lib.parseAll(r.stdout) : [] };
}

function render(args, release) {
  const r = helmTemplate(args, release);
  assert.ok(r.ok, `helm template ${args.join(" ")} failed: ${r.stderr}`);
  return r.docs;
}

function onlyDeployment(docs) {
  const deps = lib.tollgateDeployments(docs);
  assert.equal(deps.length, 1, `expected one Deployment with a container "tollgate", found ${deps.length}`);
  return deps[0];
}

const isZero = (v) => v === 0 || v === "0" || v === "0%";

// ---- every render: the Deployment ------------------------------------------

const renders = fs.readdirSync(RENDER_DIR).filter((f) => /\.yaml$/.test(f)).sort();

describe("renders", () => {
  it("there is a render of the chart and of the kustomize base", () => {
    assert.ok(renders.some((f) => f.startsWith("helm-")), `no helm-*.yaml in ${RENDER_DIR}`);
    assert.ok(renders.some((f) => f === "kustomize-base.yaml"), `no kustomize-base.yaml in ${RENDER_DIR}`);
  });
});

for (const file of renders) {
  const docs = lib.loadDocs(path.join(RENDER_DIR, file));
  describe(file, () => {
    const dep = lib.tollgateDeployments(docs)[0];
    const ctx = () => {
      assert.ok(dep, "no Deployment with a container named tollgate");
      const c = lib.tollgateContainer(dep);
      const pod = dep.spec.template.spec;
      const cfg = lib.configFor(docs, dep);
      return { c, pod, cfg };
    };

    it("Deployment securityContext: non-root, read-only root, no capabilities, RuntimeDefault seccomp, no privilege escalation", () => {
      const { c, pod } = ctx();
      const psc = pod.securityContext || {};
      const csc = c.securityContext || {};
      const pick = (k) => (csc[k] !== undefined ? csc[k] : psc[k]);
      assert.equal(pick("runAsNonRoot"), true, "runAsNonRoot");
      assert.notEqual(pick("runAsUser"), 0, "runAsUser 0");
      assert.equal(csc.readOnlyRootFilesystem, true, "container readOnlyRootFilesystem");
      assert.equal(csc.allowPrivilegeEscalation, false, "container allowPrivilegeEscalation");
      assert.notEqual(csc.privileged, true, "privileged");
      assert.ok(((csc.capabilities || {}).drop || []).includes("ALL"), "capabilities.drop lacks ALL");
      assert.deepEqual((csc.capabilities || {}).add || [], [], "capabilities.add");
      const seccomp = (csc.seccompProfile || psc.seccompProfile || {}).type;
      assert.equal(seccomp, "RuntimeDefault", "seccompProfile.type");
    });

    it("rolling update never takes a ready pod away (maxUnavailable 0)", () => {
      const s = dep && dep.spec.strategy;
      assert.ok(s && (s.type === undefined || s.type === "RollingUpdate"), `strategy ${JSON.stringify(s)}`);
      assert.ok(s.rollingUpdate && isZero(s.rollingUpdate.maxUnavailable),
        `rollingUpdate.maxUnavailable ${JSON.stringify(s.rollingUpdate)}`);
    });

    it("tollgate.yaml comes from a ConfigMap mounted as a directory (no subPath)", () => {
      const { c, cfg } = ctx();
      assert.ok(!cfg.error, cfg.error);
      assert.equal(cfg.file, "/etc/tollgate/config/tollgate.yaml");
      assert.equal(cfg.mount.mountPath, "/etc/tollgate/config");
      for (const m of c.volumeMounts || []) assert.equal(m.subPath, undefined, `subPath mount ${m.mountPath}`);
    });

    it("probes hit /healthz and /readyz on the admin port the config listens on", () => {
      const { c, cfg } = ctx();
      assert.ok(!cfg.error, cfg.error);
      const admin = cfg.config.admin_listen;
      assert.ok(admin, "tollgate.yaml sets no admin_listen (the default 127.0.0.1:9090 is unreachable for the kubelet)");
      assert.ok(!/^(127\.|localhost|\[::1\])/.test(String(admin)), `admin_listen ${admin} is loopback`);
      const adminPort = lib.listenPort(admin);
      const health = cfg.config.health || {};
      const healthz = health.healthz_path || "/healthz";
      const readyz = health.readyz_path || "/readyz";
      const want = { livenessProbe: [healthz], readinessProbe: [readyz], startupProbe: [healthz, readyz] };
      for (const [probe, paths] of Object.entries(want)) {
        const p = c[probe];
        assert.ok(p && p.httpGet, `${probe}: no httpGet probe`);
        const port = p.httpGet.port;
        assert.ok(port === "admin" || port === 9090, `${probe}: port ${JSON.stringify(port)}, want admin or 9090`);
        const num = typeof port === "number" ? port
          : ((c.ports || []).find((cp) => cp.name === port) || {}).containerPort;
        assert.equal(num, adminPort, `${probe}: port ${port} is ${num}, admin_listen is ${admin}`);
        assert.ok(paths.includes(p.httpGet.path), `${probe}: path ${p.httpGet.path}, want ${paths.join(" or ")}`);
      }
    });

    it("terminationGracePeriodSeconds >= shutdown_delay + 10 s", () => {
      const { pod, cfg } = ctx();
      assert.ok(!cfg.error, cfg.error);
      const grace = pod.terminationGracePeriodSeconds === undefined ? 30 : pod.terminationGracePeriodSeconds;
      const delay = cfg.config.shutdown_delay === undefined ? 5 : lib.durationSeconds(cfg.config.shutdown_delay);
      assert.ok(Number.isFinite(delay), `shutdown_delay ${cfg.config.shutdown_delay}`);
      assert.ok(grace >= delay + 10, `terminationGracePeriodSeconds ${grace} < shutdown_delay ${delay} + 10`);
    });

    it("secrets: *_FILE only, files under the mounted Secret, 0440 with fsGroup 10001", () => {
      const { c, pod } = ctx();
      const names = (c.env || []).map((e) => e.name);
      for (const n of names) {
        if (/_FILE$/.test(n)) assert.ok(!names.includes(n.replace(/_FILE$/, "")), `both ${n} and ${n.replace(/_FILE$/, "")}`);
      }
      const fileVars = (c.env || []).filter((e) => /^(API_KEYS|JWT_SECRET|ADMIN_TOKEN|REDIS_PASSWORD)_FILE$/.test(e.name));
      if (fileVars.length === 0) return;
      const mount = (c.volumeMounts || []).find((m) => m.mountPath === "/etc/tollgate/secrets");
      assert.ok(mount, "a *_FILE variable is set but nothing is mounted at /etc/tollgate/secrets");
      const vol = pod.volumes.find((v) => v.name === mount.name);
      // a Secret volume, or a projected one made of Secrets only
      const sources = vol && vol.secret ? [vol.secret]
        : vol && vol.projected ? vol.projected.sources.map((src) => src.secret) : [];
      assert.ok(sources.length && sources.every(Boolean), `volume ${mount.name} is not made of Secrets`);
      const mode = vol.secret ? vol.secret.defaultMode : vol.projected.defaultMode;
      assert.equal(mode, 0o440, `defaultMode ${mode} (want 0440)`);
      assert.equal((pod.securityContext || {}).fsGroup, 10001, "pod fsGroup");
      const paths = sources.flatMap((src) => (src.items ? src.items.map((i) => i.path) : null) || []);
      const listsAll = sources.every((src) => src.items);
      for (const e of fileVars) {
        assert.ok(String(e.value).startsWith("/etc/tollgate/secrets/"), `${e.name}=${e.value}`);
        const key = path.posix.basename(String(e.value));
        if (listsAll) assert.ok(paths.includes(key), `${e.name}: no item ${key} in the Secret volume`);
      }
    });

    it("tollgate.yaml holds no secret key", () => {
      for (const { cm, config } of lib.tollgateConfigs(docs)) {
        const where = `ConfigMap ${cm.metadata.name}`;
        assert.equal(((config.auth || {}).jwt || {}).secret, undefined, `${where}: auth.jwt.secret`);
        assert.equal((config.redis || {}).password, undefined, `${where}: redis.password`);
        assert.equal(config.admin_token, undefined, `${where}: admin_token`);
        // auth.api_keys is only the deprecation mapping, never keys
        const ak = (config.auth || {}).api_keys || {};
        for (const k of Object.keys(ak)) {
          assert.ok(["deprecated", "deprecated_since", "sunset", "link"].includes(k),
            `${where}: auth.api_keys.${k}`);
        }
      }
    });
  });
}

// ---- the chart, rendered again with changed values --------------------------

describe("chart", () => {
  const base = render([]);
  const baseDep = onlyDeployment(base);
  const baseCm = lib.tollgateConfigs(base)[0];

  it("secret values never land in a ConfigMap", () => {
    const key = lib.run(process.env.TOLLGATE_BIN || path.join(lib.root, "build", "tollgate"), ["gen-key", "--id", "ci"]);
    const line = (/^line:\s*(.+)$/m.exec(key.stdout) || [])[1];
    assert.ok(line, `tollgate gen-key: ${key.stderr}`);
    const secrets = {
      apiKeys: line,
      jwtSecret: "jwt-SECRET-4b1d9c2e7f30a8d6e5c4b3a291807f6e",
      adminToken: "admin-SECRET-9f8e7d6c5b4a39281706f5e4d3c2b1a0",
      adminTokens: "sre-dashboard read tokens-SECRET-1a2b3c4d5e6f708192a3b4c5d6e7f8091\n",
      redisPassword: "redis-SECRET-0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    };
    const needles = [];
    for (const v of Object.values(secrets)) {
      needles.push(v, Buffer.from(v).toString("base64"));
      needles.push(...v.split(/\s+/).filter((w) => w.length >= 16)); // the key digest alone
    }
    const docs = render([
      ...Object.entries(secrets).flatMap(([k, v]) => ["--set-string", `secrets.${k}=${v}`]),
      "--set", "redis.deploy=external", "--set", "config.redis.mode=standalone", "--set", "config.redis.nodes={redis:6379}",
    ]);
    for (const cm of lib.ofKind(docs, "ConfigMap")) {
      const text = JSON.stringify([cm.data || {}, cm.binaryData || {}, cm.metadata]);
      for (const n of needles) assert.ok(!text.includes(n), `ConfigMap ${cm.metadata.name} contains a secret value (${n.slice(0, 12)}...)`);
    }
    const secret = lib.ofKind(docs, "Secret");
    assert.ok(secret.length >= 1, "no Secret rendered");
    const sText = JSON.stringify(secret.map((s) => [s.data, s.stringData]));
    for (const v of Object.values(secrets)) {
      assert.ok(sText.includes(v) || sText.includes(Buffer.from(v).toString("base64")) || sText.includes(Buffer.from(`${v}\n`).toString("base64")),
        `a secret value is in no Secret (${v.slice(0, 12)}...)`);
    }
    const env = (lib.tollgateContainer(onlyDeployment(docs)).env || []).map((e) => e.name);
    for (const n of ["API_KEYS_FILE", "JWT_SECRET_FILE", "ADMIN_TOKEN_FILE", "ADMIN_TOKENS_FILE",
      "REDIS_PASSWORD_FILE"]) {
      assert.ok(env.includes(n), `${n} not set with every secret given`);
    }
  });

  it("a limits-only change keeps the pod template identical (hot reload, no rollout)", () => {
    const docs = render(["-f", path.join(HERE, "values-limits-change.yaml")]);
    const cm = lib.tollgateConfigs(docs)[0];
    assert.notEqual(cm.text, baseCm.text, "the limits change did not reach tollgate.yaml");
    assert.deepEqual(onlyDeployment(docs).spec.template, baseDep.spec.template);
  });

  it("a redis change changes the pod template's checksum/config (rollout)", () => {
    const docs = render(["--set", "redis.deploy=external", "--set", "config.redis.mode=standalone", "--set", "config.redis.nodes={redis:6379}"]);
    const a = (baseDep.spec.template.metadata.annotations || {})["checksum/config"];
    const b = (onlyDeployment(docs).spec.template.metadata.annotations || {})["checksum/config"];
    assert.ok(a, "no checksum/config annotation on the pod template");
    assert.notEqual(b, a, "checksum/config unchanged by a redis change");
  });

  it("an identity provider fetched over HTTPS opens egress on 443 only then", () => {
    const egress = (docs) => (lib.ofKind(docs, "NetworkPolicy")[0] || {spec: {}}).spec.egress || [];
    const has443 = (docs) => egress(docs).some((r) => (r.ports || []).some((p) => p.port === 443));
    const on = ["--set", "networkPolicy.enabled=true", "--set", "networkPolicy.egress.enabled=true"];
    assert.ok(!has443(render(on)), "443 open without any provider");
    const docs = render(on.concat([
      "--set", "config.auth.jwt.providers[0].issuer=https://sso.example.com/realms/api",
      "--set", "config.auth.jwt.providers[0].discovery=true"]));
    assert.ok(has443(docs), "no egress rule for the identity provider");
  });

  it("the token cache size needs a restart: it is in checksum/config", () => {
    const docs = render(["--set", "config.auth.jwt.cache_entries=500"]);
    const a = baseDep.spec.template.metadata.annotations["checksum/config"];
    assert.notEqual(onlyDeployment(docs).spec.template.metadata.annotations["checksum/config"], a);
  });

  const rejects = {
    "bad rate string": ["-f", path.join(HERE, "values-bad-rate.yaml")],
    "unknown auth mode": ["--set", "config.auth.mode=magic"],
    "unknown top-level key": ["--set", "replicaCuont=3"],
    "negative replicaCount": ["--set", "replicaCount=-1"],
  };
  for (const [what, args] of Object.entries(rejects)) {
    it(`values.schema.json rejects a ${what}`, () => {
      assert.ok(fs.existsSync(path.join(CHART, "values.schema.json")), "the chart has no values.schema.json");
      const r = helmTemplate(args);
      assert.ok(!r.ok, `helm template ${args.join(" ")} rendered`);
      assert.match(r.stderr, /schema/i, `refused, but not by the schema: ${r.stderr.trim()}`);
    });
  }

  it("refuses terminationGracePeriodSeconds < shutdown_delay + 10 s", () => {
    const r = helmTemplate(["--set", "terminationGracePeriodSeconds=10", "--set", "config.shutdown_delay=5s"]);
    assert.ok(!r.ok, "rendered with terminationGracePeriodSeconds 10 and shutdown_delay 5s");
  });

  it("names: <release>-tollgate unless the release name contains tollgate", () => {
    const docs = render([], "edge");
    const dep = onlyDeployment(docs);
    assert.equal(dep.metadata.name, "edge-tollgate");
    assert.ok(lib.ofKind(docs, "ConfigMap").some((c) => c.metadata.name === "edge-tollgate-config"));
    assert.deepEqual(dep.spec.selector.matchLabels, {
      "app.kubernetes.io/name": "tollgate", "app.kubernetes.io/instance": "edge",
    });
    assert.equal(baseDep.metadata.name, "tollgate");
  });

  it("--threads follows the CPU limit (1500m -> 2)", () => {
    const c = lib.tollgateContainer(onlyDeployment(render(["--set", "resources.limits.cpu=1500m"])));
    const args = c.args || [];
    assert.equal(args[args.indexOf("--threads") + 1], "2", `args ${JSON.stringify(args)}`);
  });
});

// ---- shared state: the chart's own Redis, or a refusal ----------------------

// The pod templates of every workload of a render: [{what, pod}].
function podTemplates(docs) {
  return docs.filter((d) => ["Deployment", "StatefulSet", "Job", "DaemonSet"].includes(d.kind))
    .map((d) => ({ what: `${d.kind} ${d.metadata.name}`, pod: d.spec.template.spec }));
}

function assertHardened(what, pod) {
  const psc = pod.securityContext || {};
  assert.equal((psc.seccompProfile || {}).type, "RuntimeDefault", `${what}: pod seccompProfile`);
  assert.equal(pod.automountServiceAccountToken, false, `${what}: automountServiceAccountToken`);
  for (const c of pod.containers) {
    const csc = c.securityContext || {};
    const pick = (k) => (csc[k] !== undefined ? csc[k] : psc[k]);
    assert.equal(pick("runAsNonRoot"), true, `${what}/${c.name}: runAsNonRoot`);
    assert.ok(pick("runAsUser") > 0, `${what}/${c.name}: runAsUser ${pick("runAsUser")}`);
    assert.equal(csc.readOnlyRootFilesystem, true, `${what}/${c.name}: readOnlyRootFilesystem`);
    assert.equal(csc.allowPrivilegeEscalation, false, `${what}/${c.name}: allowPrivilegeEscalation`);
    assert.ok(((csc.capabilities || {}).drop || []).includes("ALL"), `${what}/${c.name}: capabilities.drop ALL`);
  }
}

const redisSts = (docs) => lib.ofKind(docs, "StatefulSet").find((s) => s.metadata.name.endsWith("-redis"));
const redisConf = (docs) => {
  const sts = redisSts(docs);
  const vol = sts.spec.template.spec.volumes.find((v) => v.name === "config");
  return lib.ofKind(docs, "ConfigMap").find((c) => c.metadata.name === vol.configMap.name).data;
};
const tollgateConfig = (docs) => {
  const cfg = lib.configFor(docs, onlyDeployment(docs));
  assert.ok(!cfg.error, cfg.error);
  return cfg.config;
};
const refusal = (args) => {
  const r = helmTemplate(args);
  assert.ok(!r.ok, `helm template ${args.join(" ")} rendered`);
  return r.stderr;
};

describe("shared state", () => {
  it("every pod the chart can run is hardened like tollgate's (every render)", () => {
    let n = 0;
    for (const file of renders.filter((f) => f.startsWith("helm-"))) {
      for (const { what, pod } of podTemplates(lib.loadDocs(path.join(RENDER_DIR, file)))) {
        assertHardened(`${file}: ${what}`, pod);
        n++;
      }
    }
    assert.ok(n >= 5, `only ${n} pod templates in the helm renders`);
  });

  it("default: one Redis (StatefulSet, pinned image, AOF, probes) that tollgate points at with the generated password", () => {
    const docs = render([]);
    const sts = redisSts(docs);
    assert.ok(sts, "no Redis StatefulSet in the default render");
    assert.equal(sts.spec.replicas, 1);
    const c = sts.spec.template.spec.containers[0];
    assert.match(c.image, /^[^@]+:[0-9]+\.[0-9]+\.[0-9]+$/, `image ${c.image} is not pinned by a version tag`);
    assert.ok(c.readinessProbe && c.livenessProbe, "Redis probes");
    const conf = redisConf(docs)["redis.conf"];
    assert.match(conf, /^appendonly yes$/m, "AOF off");
    assert.match(conf, /^maxmemory-policy noeviction$/m);
    assert.doesNotMatch(conf, /^\s*(requirepass|masterauth)\b/m, "a password line in the ConfigMap");
    // no persistence by default: an emptyDir for /data
    assert.ok(sts.spec.template.spec.volumes.some((v) => v.name === "data" && v.emptyDir), "no emptyDir data volume");
    assert.equal(sts.spec.volumeClaimTemplates, undefined);
    // tollgate -> the Service, password from the generated Secret
    const svc = lib.ofKind(docs, "Service").find((s) => s.metadata.name === "tollgate-redis");
    assert.ok(svc, "no Service tollgate-redis");
    assert.deepEqual(svc.spec.selector, sts.spec.selector.matchLabels);
    const cfg = tollgateConfig(docs);
    assert.equal(cfg.redis.mode, "standalone");
    assert.deepEqual(cfg.redis.nodes, ["tollgate-redis:6379"]);
    const secret = lib.ofKind(docs, "Secret").find((s) => s.metadata.name === "tollgate-redis");
    const pw = Buffer.from(secret.data["redis-password"], "base64").toString();
    assert.match(pw, /^[A-Za-z0-9]{48}$/, "generated password");
    const dep = onlyDeployment(docs);
    const env = lib.tollgateContainer(dep).env;
    assert.ok(env.some((e) => e.name === "REDIS_PASSWORD_FILE" && e.value === "/etc/tollgate/secrets/redis-password"));
    const vol = dep.spec.template.spec.volumes.find((v) => v.name === "secrets");
    assert.ok(vol.projected.sources.some((src) => src.secret.name === "tollgate-redis"
      && src.secret.items.some((i) => i.key === "redis-password" && i.path === "redis-password")),
    "the Redis password is not in tollgate's secrets volume");
    // tollgate's Service does not select the Redis pods, nor the reverse
    const tsvc = lib.ofKind(docs, "Service").find((s) => s.metadata.name === "tollgate");
    const redisLabels = sts.spec.template.metadata.labels;
    assert.ok(Object.entries(tsvc.spec.selector).some(([k, v]) => redisLabels[k] !== v), "tollgate's Service selects Redis");
  });

  it("the generated Redis password is random, not a constant (without a cluster lookup finds nothing to keep)", () => {
    const a = lib.ofKind(render([]), "Secret").find((s) => s.metadata.name === "tollgate-redis");
    const b = lib.ofKind(render([]), "Secret").find((s) => s.metadata.name === "tollgate-redis");
    assert.notEqual(a.data["redis-password"], b.data["redis-password"], "randAlphaNum is not random");
  });

  it("redis.persistence.enabled: a PersistentVolumeClaim template instead of the emptyDir", () => {
    const sts = redisSts(render(["--set", "redis.persistence.enabled=true", "--set", "redis.persistence.size=2Gi"]));
    assert.equal(sts.spec.volumeClaimTemplates[0].metadata.name, "data");
    assert.equal(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage, "2Gi");
    assert.ok(!sts.spec.template.spec.volumes.some((v) => v.name === "data"));
  });

  it("redis.auth.existingSecret: no generated Secret, both sides read that one", () => {
    const docs = render(["--set", "redis.auth.existingSecret=my-redis", "--set", "redis.auth.existingSecretKey=pw"]);
    assert.ok(!lib.ofKind(docs, "Secret").some((s) => s.metadata.name === "tollgate-redis"));
    const auth = redisSts(docs).spec.template.spec.volumes.find((v) => v.name === "auth").secret;
    assert.deepEqual([auth.secretName, auth.items[0].key], ["my-redis", "pw"]);
    const vol = onlyDeployment(docs).spec.template.spec.volumes.find((v) => v.name === "secrets");
    assert.ok(vol.projected.sources.some((src) => src.secret.name === "my-redis" && src.secret.items[0].key === "pw"));
  });

  it("another Redis password Secret rolls both tollgate and Redis (the password is read at start)", () => {
    const sum = (docs, w) => w.spec.template.metadata.annotations["checksum/config"];
    const a = render([]);
    const b = render(["--set", "redis.auth.existingSecret=my-redis"]);
    assert.notEqual(sum(b, onlyDeployment(b)), sum(a, onlyDeployment(a)), "tollgate not rolled");
    assert.notEqual(sum(b, redisSts(b)), sum(a, redisSts(a)), "Redis not rolled");
  });

  it("cluster: the nodes, their names in tollgate.yaml, the init hook Job, the overlay's scripts", () => {
    const docs = render(["--set", "redis.deploy=cluster"]);
    const sts = redisSts(docs);
    assert.equal(sts.spec.replicas, 6);
    assert.equal(sts.spec.serviceName, "tollgate-redis-headless");
    assert.ok(sts.spec.volumeClaimTemplates, "cluster nodes need a volume (nodes.conf)");
    const cfg = tollgateConfig(docs);
    assert.equal(cfg.redis.mode, "cluster");
    assert.deepEqual(cfg.redis.nodes, [0, 1, 2, 3, 4, 5].map((i) => `tollgate-redis-${i}.tollgate-redis-headless:6379`));
    const headless = lib.ofKind(docs, "Service").find((s) => s.metadata.name === "tollgate-redis-headless");
    assert.equal(headless.spec.clusterIP, "None");
    assert.ok(headless.spec.ports.some((p) => p.port === 16379), "no bus port");
    const conf = redisConf(docs);
    assert.match(conf["redis.conf"], /^cluster-enabled yes$/m);
    assert.match(conf["redis.conf"], /^appendonly yes$/m);
    const job = lib.ofKind(docs, "Job")[0];
    assert.ok(job, "no cluster-init Job");
    assert.match(job.metadata.annotations["helm.sh/hook"], /post-install/);
    assert.match(job.metadata.annotations["helm.sh/hook"], /post-upgrade/);
    const env = Object.fromEntries(job.spec.template.spec.containers[0].env.map((e) => [e.name, e.value]));
    assert.deepEqual([env.REPLICAS, env.STATEFULSET, env.SERVICE], ["6", "tollgate-redis", "tollgate-redis-headless"]);
    // the scripts are the kustomize overlays' (one behaviour to test and fix)
    const read = (p) => fs.readFileSync(path.join(lib.root, p), "utf8");
    assert.equal(conf["cluster-init.sh"].trimEnd(), read("k8s/overlays/redis-cluster/cluster-init.sh").trimEnd());
    assert.equal(conf["redis-start.sh"].trimEnd(), read("k8s/overlays/redis-cluster/redis-start.sh").trimEnd());
    assert.equal(redisConf(render([]))["redis-start.sh"].trimEnd(),
      read("k8s/overlays/standalone-redis/redis-start.sh").trimEnd());
  });

  it("external: nothing deployed, tollgate points where it is told", () => {
    const docs = render(["--set", "redis.deploy=external", "--set", "config.redis.mode=cluster",
      "--set", "config.redis.nodes={r1:6379,r2:6379}", "--set", "config.redis.tls=true"]);
    assert.equal(lib.ofKind(docs, "StatefulSet").length, 0);
    assert.ok(!lib.ofKind(docs, "Secret").some((s) => s.metadata.name === "tollgate-redis"));
    const cfg = tollgateConfig(docs);
    assert.deepEqual([cfg.redis.mode, cfg.redis.nodes, cfg.redis.tls], ["cluster", ["r1:6379", "r2:6379"], true]);
  });

  it("expected_replicas is the most replicas that can run (HPA: maxReplicas)", () => {
    assert.equal(tollgateConfig(render(["--set", "replicaCount=4"])).expected_replicas, 4);
    const hpa = ["--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=3", "--set", "autoscaling.maxReplicas=12"];
    assert.equal(tollgateConfig(render(hpa)).expected_replicas, 12);
    const prod = lib.loadDocs(path.join(RENDER_DIR, "helm-production.yaml"));
    const max = lib.ofKind(prod, "HorizontalPodAutoscaler")[0].spec.maxReplicas;
    assert.equal(tollgateConfig(prod).expected_replicas, max, "values-production.yaml");
  });

  const refusals = {
    "redis.deploy none with 2 replicas": [["--set", "redis.deploy=none"],
      /redis\.deploy: none with replicaCount 2: .*2 times their limits.*allowPerReplicaLimits: true/],
    "redis.deploy none with an HPA (replicaCount 1)": [["--set", "redis.deploy=none", "--set", "replicaCount=1",
      "--set", "autoscaling.enabled=true"], /redis\.deploy: none with autoscaling up to 10 replicas/],
    "config.redis.mode none (the old off switch) with 2 replicas": [["--set", "config.redis.mode=none"],
      /config\.redis\.mode is set by the chart when redis\.deploy is standalone/],
    "config.redis.mode next to the chart's Redis": [["--set", "config.redis.mode=standalone", "--set", "config.redis.nodes={x:6379}"],
      /config\.redis\.mode is set by the chart/],
    "external without nodes": [["--set", "redis.deploy=external"], /redis\.deploy: external needs your Redis: config\.redis\.mode .* config\.redis\.nodes/],
    "external with nodes but mode none": [["--set", "redis.deploy=external", "--set", "config.redis.nodes={x:6379}"],
      /set config\.redis\.mode to standalone or cluster/],
    "secrets.redisPassword next to the chart's Redis": [["--set", "secrets.redisPassword=abc"],
      /generates the Redis password .*redis\.auth\.existingSecret/],
    "existingSecret without existingSecretKeys": [["--set", "existingSecret=x"],
      /existingSecret "x" with no existingSecretKeys: list the keys/],
    "existingSecret with only admin-token": [["--set", "existingSecret=x", "--set", "existingSecretKeys={admin-token}"],
      /auth\.mode any but existingSecretKeys \[admin-token\] has neither api-keys nor jwt-secret/],
    "auth.mode api_key, existingSecret without api-keys": [["--set", "existingSecret=x", "--set", "existingSecretKeys={jwt-secret}",
      "--set", "config.auth.mode=api_key"], /auth\.mode api_key but existingSecretKeys \[jwt-secret\] has no api-keys/],
    "a cluster of 7 nodes (odd)": [["--set", "redis.deploy=cluster", "--set", "redis.cluster.nodes=7"], /even number >= 6/],
    "an unknown redis.deploy": [["--set", "redis.deploy=sentinel"], /schema/i],
  };
  for (const [what, [args, want]] of Object.entries(refusals)) {
    it(`refuses ${what}, saying why`, () => assert.match(refusal(args), want));
  }

  const allowed = {
    "redis.deploy none with one replica": ["--set", "redis.deploy=none", "--set", "replicaCount=1"],
    "redis.deploy none with allowPerReplicaLimits": ["--set", "redis.deploy=none", "--set", "allowPerReplicaLimits=true"],
    "external through REDIS_URL": ["--set", "redis.deploy=external", "--set", "extraEnv[0].name=REDIS_URL",
      "--set", "extraEnv[0].value=redis://r:6379"],
    "existingSecret with api-keys": ["--set", "existingSecret=x", "--set", "existingSecretKeys={api-keys}"],
  };
  for (const [what, args] of Object.entries(allowed)) {
    it(`renders ${what}`, () => {
      const docs = render(args);
      if (args.includes("redis.deploy=none")) {
        assert.equal(tollgateConfig(docs).redis.mode, "none");
        assert.equal(lib.ofKind(docs, "StatefulSet").length, 0);
      }
    });
  }
});

// ---- the install path the docs give -------------------------------------------

describe("install path", () => {
  const readme = fs.readFileSync(path.join(lib.root, "README.md"), "utf8");

  it("every example values file's existingSecret is created, with its keys, by the README", () => {
    // `kubectl ... create secret generic NAME \ --from-file=KEY=...` (continuations joined)
    const joined = readme.replace(/\\\n\s*/g, " ");
    for (const f of fs.readdirSync(CHART).filter((n) => /^values-.*\.yaml$/.test(n))) {
      const v = lib.parseOne(fs.readFileSync(path.join(CHART, f), "utf8")) || {};
      if (!v.existingSecret) continue;
      const m = new RegExp(`kubectl -n tollgate create secret generic ${v.existingSecret}\\b([^\\n]*)`).exec(joined);
      assert.ok(m, `${f}: existingSecret ${v.existingSecret} is created by no step of README.md`);
      for (const k of v.existingSecretKeys || []) {
        assert.ok(m[1].includes(`--from-file=${k}=`), `${f}: README.md creates ${v.existingSecret} without key ${k}`);
      }
    }
  });

  it("every Secret and ConfigMap a rendered pod needs is rendered too, or created by a README step", () => {
    const created = new Set([...readme.replace(/\\\n\s*/g, " ")
      .matchAll(/kubectl -n tollgate create secret generic ([a-z0-9-]+)/g)].map((m) => m[1]));
    for (const file of renders.filter((f) => f.startsWith("helm-"))) {
      const docs = lib.loadDocs(path.join(RENDER_DIR, file));
      const have = new Set(docs.filter((d) => d.kind === "Secret" || d.kind === "ConfigMap")
        .map((d) => `${d.kind} ${d.metadata.name}`));
      for (const { what, pod } of podTemplates(docs)) {
        const needs = [];
        for (const v of pod.volumes || []) {
          if (v.secret) needs.push(`Secret ${v.secret.secretName}`);
          if (v.configMap) needs.push(`ConfigMap ${v.configMap.name}`);
          for (const src of (v.projected || {}).sources || []) {
            if (src.secret) needs.push(`Secret ${src.secret.name}`);
            if (src.configMap) needs.push(`ConfigMap ${src.configMap.name}`);
          }
        }
        for (const n of needs) {
          assert.ok(have.has(n) || (n.startsWith("Secret ") && created.has(n.slice(7))),
            `${file}: ${what} mounts ${n}, which neither the chart nor a README step creates`);
        }
      }
    }
  });

  it("the README builds, pushes and names the image before helm install", () => {
    const i = readme.indexOf("make image");
    const push = readme.search(/buildah[^\n]* push /);
    const install = readme.search(/helm install [^\n]*\n?[^\n]*--set image\.repository=/);
    assert.ok(i >= 0 && push > i && install > push, `make image ${i}, push ${push}, helm install --set image.repository ${install}`);
  });

  it("ingress-nginx annotations: README, NOTES, docs/kubernetes.md and docs/forward-auth.md give the same set", () => {
    const annotations = (text) => [...text.matchAll(/^\s*(nginx\.ingress\.kubernetes\.io\/auth-[a-z-]+):\s*(.*)$/gm)]
      .map((m) => `${m[1]}: ${m[2].trim()}`).filter((l) => !/auth-(proxy-set-headers|signin|snippet)/.test(l));
    const notes = lib.renderNotes(HELM, CHART);
    assert.ok(notes.ok, notes.stderr);
    const want = annotations(notes.text);
    assert.ok(want.length >= 3, `NOTES: ${JSON.stringify(want)}`);
    for (const doc of ["README.md", "docs/kubernetes.md", "docs/forward-auth.md"]) {
      const got = annotations(fs.readFileSync(path.join(lib.root, doc), "utf8"));
      assert.deepEqual([...new Set(got)], want, doc);
    }
  });
});

// ---- alerts and dashboard query metrics tollgate exports --------------------

describe("observability", () => {
  // docs/reference.md's metric table is checked against what /metrics
  // exports by the docs unit suite (tests/unit/test_docs.c), so a name in it
  // is a name tollgate exports.
  const reference = fs.readFileSync(path.join(lib.root, "docs", "reference.md"), "utf8");
  const exported = new Set([...reference.matchAll(/^\| `((?:tollgate|process)_[a-z_]+)`/gm)].map((m) => m[1]));
  const base = (name) => name.replace(/_(bucket|sum|count)$/, "");
  const used = (text) => [...new Set([...text.matchAll(/\b((?:tollgate|process)_[a-z_]+)\s*[{[(]/g)].map((m) => m[1]))];

  it("the reference lists the metrics", () => {
    assert.ok(exported.has("tollgate_requests_total") && exported.size > 15, [...exported].join(" "));
  });

  it("every alert expression queries exported metrics", () => {
    const docs = render(["--set", "prometheusRule.enabled=true"]);
    const rules = docs.filter((d) => d && d.kind === "PrometheusRule");
    assert.equal(rules.length, 1);
    const exprs = rules[0].spec.groups.flatMap((g) => g.rules).map((r) => `${r.alert}: ${r.expr}`);
    assert.ok(exprs.length >= 8, exprs.join("\n"));
    for (const e of exprs) {
      for (const n of used(e).filter((x) => x.startsWith("tollgate_") || x.startsWith("process_"))) {
        assert.ok(exported.has(n) || exported.has(base(n)), `alert ${e.split(":")[0]} queries ${n}, which tollgate does not export (docs/reference.md)`);
      }
    }
  });

  it("every dashboard query uses exported metrics", () => {
    const dir = path.join(CHART, "dashboards");
    let n = 0;
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith(".json"))) {
      const text = fs.readFileSync(path.join(dir, f), "utf8");
      JSON.parse(text); // a dashboard that does not parse fails here
      for (const m of used(text)) {
        n++;
        assert.ok(exported.has(m) || exported.has(base(m)), `${f} queries ${m}, which tollgate does not export (docs/reference.md)`);
      }
    }
    assert.ok(n >= 5, `only ${n} metric names found in the dashboards`);
  });
});
