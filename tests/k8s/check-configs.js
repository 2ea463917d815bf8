#!/usr/bin/env node
// Loads every rendered tollgate.yaml with the real binary:
//
//   node tests/k8s/check-configs.js --tollgate build/tollgate RENDER.yaml...
//
// For each ConfigMap with a tollgate.yaml key: write it to a temporary file
// and run `tollgate --check-config --config FILE` with the environment the
// Deployment that mounts it gives the tollgate container: its plain `value`
// variables as they are, and every *_FILE variable (API_KEYS_FILE,
// JWT_SECRET_FILE, ADMIN_TOKEN_FILE, ADMIN_TOKENS_FILE, REDIS_PASSWORD_FILE) pointed at a
// throwaway file with a strong generated value (production refuses weak
// secrets; the API key line comes from `tollgate gen-key --id ci`) -- after
// checking that the pod really has that file: a volume mounted there whose
// Secret/ConfigMap is in the render (or not rendered by the chart: an
// existingSecret) and lists that key among its items.  Nothing
// else from this machine's environment reaches tollgate.  One OK/FAIL line per
// ConfigMap; exit 1 when one failed.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const crypto = require("crypto");
const lib = require("./lib.js");

function main(argv) {
  let bin = null;
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--tollgate") bin = argv[++i];
    else files.push(argv[i]);
  }
  if (!bin || files.length === 0) {
    process.stderr.write("usage: check-configs.js --tollgate BIN RENDER.yaml...\n");
    return 2;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tollgate-check-"));
  try {
    const gen = lib.run(bin, ["gen-key", "--id", "ci"]);
    const line = (/^line:\s*(.+)$/m.exec(gen.stdout) || [])[1];
    if (gen.status !== 0 || !line) {
      process.stdout.write(`FAIL tollgate gen-key --id ci: ${gen.stderr || gen.stdout}\n`);
      return 1;
    }
    const secretValue = (name) => {
      if (name === "API_KEYS_FILE") return `${line}\n`;
      if (name === "ADMIN_TOKENS_FILE") // an admin tokens file: ID SCOPE TOKEN lines
        return `ci-read read ${crypto.randomBytes(32).toString("hex")}\n`;
      return crypto.randomBytes(32).toString("hex"); // 64 bytes: strong enough everywhere
    };
    let failed = 0;
    let count = 0;
    for (const file of files) {
      const docs = lib.loadDocs(file);
      const label = path.basename(file, ".yaml");
      for (const { cm, text } of lib.tollgateConfigs(docs)) {
        count++;
        const name = cm.metadata.name;
        const dir = fs.mkdtempSync(path.join(tmp, "c-"));
        const cfg = path.join(dir, "tollgate.yaml");
        fs.writeFileSync(cfg, text);
        const env = { PATH: process.env.PATH || "/usr/bin:/bin" };
        const set = [];
        const deps = lib.deploymentsMounting(docs, name);
        const missing = [];
        for (const dep of deps) {
          const c = lib.tollgateContainer(dep) || dep.spec.template.spec.containers[0];
          for (const e of c.env || []) {
            if (/_FILE$/.test(e.name)) {
              const why = lib.podFileMissing(docs, dep, c, String(e.value));
              if (why) missing.push(`${e.name}=${e.value}: ${why}`);
              const f = path.join(dir, e.name.toLowerCase());
              fs.writeFileSync(f, secretValue(e.name), { mode: 0o600 });
              env[e.name] = f;
              set.push(e.name);
            } else if (e.value !== undefined) {
              env[e.name] = String(e.value);
              set.push(`${e.name}=${e.value}`);
            } else if (e.valueFrom && e.valueFrom.secretKeyRef) {
              env[e.name] = secretValue(e.name);
              set.push(`${e.name}=<generated>`);
            }
          }
        }
        const who = `${label}: ConfigMap ${name}`;
        if (missing.length) {
          failed++;
          process.stdout.write(`FAIL ${who}: the pod would not have ${missing.join("; ")}\n`);
          continue;
        }
        const r = lib.run(bin, ["--check-config", "--config", cfg], { env, cwd: dir });
        const how = deps.length
          ? `env ${set.length ? set.join(" ") : "(none)"} from Deployment ${deps.map((d) => d.metadata.name).join(",")}`
          : "no Deployment mounts it: empty env";
        if (r.status === 0) {
          process.stdout.write(`OK   ${who} (${how})\n`);
        } else {
          failed++;
          const msg = `${r.stderr}${r.stdout}`.trim().split(cfg).join("tollgate.yaml").replace(/\n/g, " | ");
          process.stdout.write(`FAIL ${who} (${how}): exit ${r.status}: ${msg}\n`);
        }
      }
    }
    if (count === 0) {
      process.stdout.write("FAIL no ConfigMap with a tollgate.yaml key in the renders\n");
      return 1;
    }
    process.stdout.write(`${count} tollgate.yaml checked, ${count - failed} loaded, ${failed} refused\n`);
    return failed ? 1 : 0;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

process.exitCode = main(process.argv.slice(2));
