// Helpers shared by tests/k8s/check-configs.js and tests/k8s/rendered.test.js.
// The YAML parser is the validator's (tools/k8s-validate/node_modules), so
// scripts/lint-k8s.sh installs everything these need with one `npm ci`.
"use strict";

const fs = require("fs");
const path = require("path");
const { spawnSync } = require("child_process");

const root = path.resolve(__dirname, "..", "..");
const validatorDir = path.join(root, "tools", "k8s-validate");
const YAML = require(require.resolve("yaml", { paths: [validatorDir] }));

// YAML 1.1, as Kubernetes and Helm read it.
function parseAll(text) {
  return YAML.parseAllDocuments(text, { version: "1.1" })
    .map((d) => {
      if (d.errors.length) throw new Error(`YAML: ${d.errors[0].message}`);
      return d.toJS();
    })
    .filter((d) => d !== null && d !== undefined);
}

function parseOne(text) {
  return YAML.parse(text, { version: "1.1" });
}

const loadDocs = (file) => parseAll(fs.readFileSync(file, "utf8"));

const ofKind = (docs, kind) => docs.filter((d) => d && d.kind === kind);

// ConfigMaps carrying a tollgate.yaml key: [{cm, text, config}].
function tollgateConfigs(docs) {
  return ofKind(docs, "ConfigMap")
    .filter((cm) => cm.data && typeof cm.data["tollgate.yaml"] === "string")
    .map((cm) => ({ cm, text: cm.data["tollgate.yaml"], config: parseOne(cm.data["tollgate.yaml"]) || {} }));
}

const tollgateContainer = (dep) =>
  ((dep.spec.template.spec || {}).containers || []).find((c) => c.name === "tollgate");

// Deployments running a container named `tollgate`.
const tollgateDeployments = (docs) => ofKind(docs, "Deployment").filter((d) => tollgateContainer(d));

// The Deployments that mount ConfigMap `name` as a volume.
function deploymentsMounting(docs, name) {
  return ofKind(docs, "Deployment").filter((d) =>
    ((d.spec.template.spec || {}).volumes || []).some((v) => v.configMap && v.configMap.name === name));
}

// The ConfigMap a Deployment reads its tollgate.yaml from (the configMap volume
// mounted where --config points).
function configFor(docs, dep) {
  const c = tollgateContainer(dep);
  const args = c.args || [];
  const i = args.indexOf("--config");
  const file = i >= 0 ? args[i + 1] : undefined;
  if (!file) return { error: "the tollgate container has no --config argument" };
  const dir = path.posix.dirname(file);
  const key = path.posix.basename(file);
  const mount = (c.volumeMounts || []).find((m) => m.mountPath === dir || m.mountPath === file);
  if (!mount) return { error: `nothing is mounted at ${dir} (where --config ${file} points)` };
  const vol = (dep.spec.template.spec.volumes || []).find((v) => v.name === mount.name);
  if (!vol || !vol.configMap) return { error: `volume ${mount.name} mounted at ${mount.mountPath} is not a ConfigMap` };
  const cm = ofKind(docs, "ConfigMap").find((m) => m.metadata.name === vol.configMap.name);
  if (!cm) return { error: `ConfigMap ${vol.configMap.name} (volume ${mount.name}) is not in the render` };
  if (!cm.data || typeof cm.data[key] !== "string") return { error: `ConfigMap ${cm.metadata.name} has no key ${key}` };
  return { cm, mount, file, config: parseOne(cm.data[key]) || {} };
}

// A tollgate duration (30, "30s", "1m", "1h", "1d") in seconds; NaN if unparsable.
function durationSeconds(v) {
  const s = String(v).trim();
  let m = /^([0-9]+)$/.exec(s);
  if (m) return Number(m[1]);
  m = /^([0-9]+)(s|m|h|d)$/.exec(s);
  if (m) return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
  return NaN;
}

// "host:port" / "[::]:port" -> port number.
const listenPort = (v) => Number(String(v).replace(/^.*:/, ""));

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60000, maxBuffer: 64 << 20, ...opts });
  if (r.error) throw r.error;
  return r;
}

// The chart's NOTES.txt as `helm install` would print it, rendered offline:
// `helm install --dry-run` needs a cluster and `helm template` skips NOTES,
// so a copy of the chart gets a template that prints NOTES.txt as comments.
function renderNotes(helm, chart, args = []) {
  const os = require("os");
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tollgate-notes-"));
  try {
    const copy = path.join(tmp, "tollgate");
    fs.cpSync(chart, copy, { recursive: true });
    const notes = fs.readFileSync(path.join(copy, "templates", "NOTES.txt"), "utf8");
    fs.rmSync(path.join(copy, "templates", "NOTES.txt"));
    fs.writeFileSync(path.join(copy, "templates", "zz-notes.yaml"),
      `{{- define "zz.notes" }}${notes}{{- end }}\n` +
      `{{ include "zz.notes" . | replace "\\n" "\\n#N " | printf "#N %s" }}\n`);
    const r = run(helm, ["template", "tollgate", copy, "--namespace", "tollgate", "--show-only", "templates/zz-notes.yaml", ...args]);
    if (r.status !== 0) return { ok: false, stderr: r.stderr, text: "" };
    const text = r.stdout.split("\n").filter((l) => l.startsWith("#N")).map((l) => l.replace(/^#N ?/, "")).join("\n");
    return { ok: true, stderr: r.stderr, text };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// Why the file `file` would be missing in a pod of Deployment `dep`
// (container `c`), or "" when a volume provides it: mounted at its directory,
// a Secret / ConfigMap / projected volume whose rendered sources hold that
// key (items honoured). A source not in the render (an existingSecret) is
// taken on trust only when it lists the file among its items.
function podFileMissing(docs, dep, c, file) {
  const dir = path.posix.dirname(file);
  const base = path.posix.basename(file);
  const mount = (c.volumeMounts || []).find((m) => m.mountPath.replace(/\/$/, "") === dir);
  if (!mount) return `nothing is mounted at ${dir}`;
  const vol = (dep.spec.template.spec.volumes || []).find((v) => v.name === mount.name);
  if (!vol) return `volume ${mount.name} is not defined`;
  const sources = [];
  if (vol.secret) sources.push({ kind: "Secret", name: vol.secret.secretName, items: vol.secret.items });
  if (vol.configMap) sources.push({ kind: "ConfigMap", name: vol.configMap.name, items: vol.configMap.items });
  for (const src of (vol.projected || {}).sources || []) {
    if (src.secret) sources.push({ kind: "Secret", name: src.secret.name, items: src.secret.items });
    if (src.configMap) sources.push({ kind: "ConfigMap", name: src.configMap.name, items: src.configMap.items });
  }
  if (!sources.length) return `volume ${mount.name} is neither a Secret nor a ConfigMap`;
  for (const src of sources) {
    const obj = ofKind(docs, src.kind).find((o) => o.metadata.name === src.name);
    if (src.items) {
      const item = src.items.find((i) => i.path === base);
      if (!item) continue;
      if (!obj) return ""; // not rendered (existingSecret): the item is the chart's promise
      const data = Object.assign({}, obj.data || {}, obj.stringData || {});
      return item.key in data ? "" : `${src.kind} ${src.name} has no key ${item.key}`;
    }
    if (obj && base in Object.assign({}, obj.data || {}, obj.stringData || {})) return "";
  }
  return `no source of volume ${mount.name} provides ${base}`;
}

module.exports = {
  renderNotes, podFileMissing,
  root, validatorDir, YAML, parseAll, parseOne, loadDocs, ofKind, tollgateConfigs, tollgateContainer,
  tollgateDeployments, deploymentsMounting, configFor, durationSeconds, listenPort, run,
};
