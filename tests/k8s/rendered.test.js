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
      assert.ok(vol && vol.secret, `volume ${mount.name} is not a Secret`);
      assert.equal(vol.secret.defaultMode, 0o440, `defaultMode ${vol.secret.defaultMode} (want 0440)`);
      assert.equal((pod.securityContext || {}).fsGroup, 10001, "pod fsGroup");
      for (const e of fileVars) {
        assert.ok(String(e.value).startsWith("/etc/tollgate/secrets/"), `${e.name}=${e.value}`);
        const key = path.posix.basename(String(e.value));
        if (vol.secret.items) assert.ok(vol.secret.items.some((i) => i.path === key), `${e.name}: no item ${key} in the Secret volume`);
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
      redisPassword: "redis-SECRET-0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    };
    const needles = [];
    for (const v of Object.values(secrets)) {
      needles.push(v, Buffer.from(v).toString("base64"));
      needles.push(...v.split(/\s+/).filter((w) => w.length >= 16)); // the key digest alone
    }
    const docs = render([
      ...Object.entries(secrets).flatMap(([k, v]) => ["--set-string", `secrets.${k}=${v}`]),
      "--set", "config.redis.mode=standalone", "--set", "config.redis.nodes={redis:6379}",
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
    for (const n of ["API_KEYS_FILE", "JWT_SECRET_FILE", "ADMIN_TOKEN_FILE", "REDIS_PASSWORD_FILE"]) {
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
    const docs = render(["--set", "config.redis.mode=standalone", "--set", "config.redis.nodes={redis:6379}"]);
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
