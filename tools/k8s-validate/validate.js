#!/usr/bin/env node
// k8s-validate: offline, strict validation of Kubernetes manifests.
//
//   node validate.js [--quiet] [--dump-json OUT] [FILE | -]...
//
// Reads multi-document YAML (files, or stdin when no file or "-" is given),
// checks every object against the Kubernetes OpenAPI schema of its
// apiVersion+kind and prints one line per object, "OK" or "FAIL" with the
// reasons (JSON path: message).  Exit 0 when every object passed, 1 when one
// failed, 2 on a usage or YAML syntax error.  --dump-json writes the parsed
// documents as a JSON array (for a tool without a YAML parser); --quiet
// prints only the FAIL lines.
//
// Schemas: npm kubernetes-models 4.5.1 (Kubernetes v1.33.0 OpenAPI; every
// built-in kind, looked up as kubernetes-models/<apiVersion>/<Kind>) and
// @kubernetes-models/prometheus-operator 4.4.4 (prometheus-operator v0.65.1
// CRDs: ServiceMonitor, PrometheusRule, ...).  Pinned in package-lock.json.
// (4.4.x carries Kubernetes v1.27 schemas, 5.x needs Node 22; the target
// clusters run v1.31, so a field new in v1.32/v1.33 would pass here.)
//
// Why the tracing below: those packages ship the schemas only as ajv
// *standalone* validators compiled to JavaScript (no JSON schema to patch),
// and the OpenAPI spec they are compiled from declares no
// additionalProperties:false, so a Deployment whose container says
// `imagePolicy: Always` (sic) passes `new Deployment(obj).validate()`.  They do check types, enums, formats and required fields.  To make
// them strict we hand the validator a Proxy of each object and record which
// keys it reads: ajv's generated code reads every declared property it has a
// schema for (`void 0 === data.replicas || validateN(data.replicas, ...)`) and
// enumerates (for...in) the keys of map-typed objects (labels, data, limits).
// A key that the validator neither read nor enumerated is not in the schema:
// it is reported as an unknown field.  Limits: a field whose schema is empty
// or free-form ({} / x-kubernetes-preserve-unknown-fields, e.g. RawExtension,
// managedFields.fieldsV1) reads as unknown too; none of our kinds uses one.
// One leniency, to match the API server: base64 ("byte" format, Secret data)
// may be wrapped over lines, as `kubectl kustomize` writes it.  Duplicate
// objects (same apiVersion, kind, namespace, name) fail too.
// tests/k8s/bad-*.yaml prove the strictness (scripts/lint-k8s.sh runs them).
"use strict";

const fs = require("fs");
const YAML = require("yaml");

// The packages are installed next to this file (tools/k8s-validate/node_modules).
const here = __dirname;
const req = (m) => require(require.resolve(m, { paths: [here] }));

function packageFor(apiVersion) {
  if (/^monitoring\.coreos\.com\//.test(apiVersion)) {
    return "@kubernetes-models/prometheus-operator";
  }
  return "kubernetes-models";
}

const modelCache = new Map();
// The model class of apiVersion+kind, or null when no schema exists for it.
function modelFor(apiVersion, kind) {
  const key = `${apiVersion} ${kind}`;
  if (modelCache.has(key)) return modelCache.get(key);
  let cls = null;
  if (
    typeof apiVersion === "string" && typeof kind === "string" &&
    /^([a-z0-9][a-z0-9.-]*\/)?v[0-9]+((alpha|beta)[0-9]+)?$/.test(apiVersion) &&
    /^[A-Z][A-Za-z0-9]*$/.test(kind)
  ) {
    try {
      const mod = req(`${packageFor(apiVersion)}/${apiVersion}/${kind}`);
      const c = mod[kind];
      // Sub-types (DeploymentSpec, ...) are modules too: only top-level kinds
      // carry a static apiVersion/kind.
      if (c && c.apiVersion === apiVersion && c.kind === kind) cls = c;
    } catch (e) {
      if (e.code !== "MODULE_NOT_FOUND" && e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw e;
    }
  }
  modelCache.set(key, cls);
  return cls;
}

const esc = (k) => String(k).replace(/~/g, "~0").replace(/\//g, "~1");

// Deep copy of value in which every plain object is a Proxy recording the keys
// the validator reads (get/has) and whether it enumerated them (ownKeys).
function traced(value, ptr, records) {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v, i) => traced(v, `${ptr}/${i}`, records));
  const rec = { ptr, keys: Object.keys(value), read: new Set(), enumerated: false };
  records.push(rec);
  const target = {};
  for (const k of rec.keys) target[k] = traced(value[k], `${ptr}/${esc(k)}`, records);
  return new Proxy(target, {
    get(t, k, r) {
      if (typeof k === "string") rec.read.add(k);
      return Reflect.get(t, k, r);
    },
    has(t, k) {
      if (typeof k === "string") rec.read.add(k);
      return Reflect.has(t, k);
    },
    ownKeys(t) {
      rec.enumerated = true;
      return Reflect.ownKeys(t);
    },
  });
}

// The value at a JSON pointer ("/spec/x~1y/0") of doc.
function at(doc, ptr) {
  let v = doc;
  for (const part of ptr.split("/").slice(1)) {
    if (v === null || typeof v !== "object") return undefined;
    v = v[part.replace(/~1/g, "/").replace(/~0/g, "~")];
  }
  return v;
}

// ajv's "byte" format is strict RFC 4648; the API server decodes []byte with
// Go's encoding/base64, which skips \r and \n, so base64 wrapped over lines
// (as `kubectl kustomize` writes Secret data) is valid there.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
function falseAlarm(doc, e) {
  if (e.keyword !== "format" || !e.params || e.params.format !== "byte") return false;
  const v = at(doc, e.instancePath);
  return typeof v === "string" && BASE64.test(v.replace(/[\r\n]/g, ""));
}

function fmtAjv(e) {
  let msg = e.message || e.keyword;
  if (e.keyword === "enum" && e.params && e.params.allowedValues) {
    msg += ` ${JSON.stringify(e.params.allowedValues)}`;
  }
  return `${e.instancePath || "/"}: ${msg}`;
}

// Returns a list of problems ("JSON-path: message"); empty when valid.
function validateObject(doc) {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    return ["/: not a mapping"];
  }
  const cls = modelFor(doc.apiVersion, doc.kind);
  if (!cls) {
    return [`/: unknown kind: no schema for apiVersion ${JSON.stringify(doc.apiVersion)} kind ${JSON.stringify(doc.kind)}`];
  }
  const records = [];
  const proxy = traced(doc, "", records);
  const problems = [];
  try {
    cls.prototype.validate.call(proxy);
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;
    for (const err of e.errors) if (!falseAlarm(doc, err)) problems.push(fmtAjv(err));
  }
  // Unknown fields; report the outermost one only, not what lies beneath it.
  const unknown = [];
  for (const rec of records) {
    if (rec.enumerated) continue;
    if (unknown.some((u) => rec.ptr.startsWith(`${u}/`))) continue;
    for (const k of rec.keys) {
      if (!rec.read.has(k)) unknown.push(`${rec.ptr}/${esc(k)}`);
    }
  }
  for (const u of unknown) problems.push(`${u}: unknown field`);
  return [...new Set(problems)];
}

function describe(doc) {
  if (doc === null || typeof doc !== "object") return "(not an object)";
  const md = (doc.metadata && typeof doc.metadata === "object") ? doc.metadata : {};
  const name = md.namespace ? `${md.namespace}/${md.name}` : `${md.name}`;
  return `${doc.apiVersion} ${doc.kind} ${name}`;
}

function readInputs(files) {
  const out = [];
  if (files.length === 0) files = ["-"];
  for (const f of files) {
    const text = f === "-" ? fs.readFileSync(0, "utf8") : fs.readFileSync(f, "utf8");
    out.push({ name: f === "-" ? "<stdin>" : f, text });
  }
  return out;
}

function main(argv) {
  let quiet = false;
  let dump = null;
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--quiet" || a === "-q") quiet = true;
    else if (a === "--dump-json") dump = argv[++i];
    else if (a === "-h" || a === "--help") {
      process.stdout.write("usage: validate.js [--quiet] [--dump-json OUT] [FILE | -]...\n");
      return 0;
    } else if (a.startsWith("-") && a !== "-") {
      process.stderr.write(`validate.js: unknown option ${a}\n`);
      return 2;
    } else files.push(a);
  }
  if (dump === undefined) {
    process.stderr.write("validate.js: --dump-json needs a file\n");
    return 2;
  }

  const all = [];
  let failed = 0;
  let syntax = 0;
  const seen = new Map();
  for (const input of readInputs(files)) {
    // YAML 1.1, as Kubernetes and Helm read it (0440 is octal, yes/no are booleans).
    const docs = YAML.parseAllDocuments(input.text, { version: "1.1", uniqueKeys: true });
    docs.forEach((d, i) => {
      const where = `${input.name}#${i}`;
      if (d.errors.length) {
        syntax++;
        process.stdout.write(`FAIL ${where}: YAML: ${d.errors.map((e) => e.message.split("\n")[0]).join("; ")}\n`);
        return;
      }
      const doc = d.toJS({ maxAliasCount: 100 });
      if (doc === null || doc === undefined) return; // empty document (a lone ---)
      all.push(doc);
      const problems = validateObject(doc);
      const id = describe(doc);
      const ns = doc && doc.metadata && doc.metadata.namespace;
      const key = `${doc.apiVersion} ${doc.kind} ${ns || ""}/${doc.metadata && doc.metadata.name}`;
      if (seen.has(key)) problems.push(`/metadata/name: duplicate object (also ${seen.get(key)})`);
      else seen.set(key, where);
      if (problems.length) {
        failed++;
        process.stdout.write(`FAIL ${id} (${where}): ${problems.join("; ")}\n`);
      } else if (!quiet) {
        process.stdout.write(`OK   ${id} (${where})\n`);
      }
    });
  }
  if (dump) fs.writeFileSync(dump, JSON.stringify(all, null, 1));
  if (syntax) return 2;
  if (all.length === 0) {
    process.stdout.write("FAIL no Kubernetes object in the input\n");
    return 1;
  }
  const kinds = [...new Set(all.map((d) => d && d.kind))].join(" ");
  process.stdout.write(`${all.length} objects, ${all.length - failed} OK, ${failed} FAIL (${kinds})\n`);
  return failed ? 1 : 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));

module.exports = { validateObject, modelFor };
