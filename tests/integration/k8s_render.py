"""The Helm chart rendered by a real helm, as objects.

helm_bin()      scripts/k8s-tools.sh's helm (fetched and sha256-checked once)
render(values)  `helm template` of helm/tollgate with a values dict -> objects
pod_view(objs)  what a kubelet takes from the Deployment: the tollgate
                container's args, env, ports, probes, mounts and volumes
volume_files(objs, vol)  the files a kubelet puts into a configMap / secret /
                projected volume (items and their paths honoured) and its mode

YAML is turned into JSON by the `yaml` npm package that tools/k8s-validate
installs (Python's stdlib has no YAML parser and Debian's python3-yaml is
not on this interpreter's path).
"""
import base64
import json
import os
import subprocess
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(REPO, "helm", "tollgate")
VALIDATOR = os.path.join(REPO, "tools", "k8s-validate")
RELEASE = "rehearsal"

_helm = None


def helm_bin():
    global _helm
    if _helm is None:
        out = subprocess.run([os.path.join(REPO, "scripts", "k8s-tools.sh")], check=True,
                             stdout=subprocess.PIPE, universal_newlines=True, timeout=300)
        _helm = os.path.join(out.stdout.strip().splitlines()[-1], "helm")
    return _helm


def _yaml_module():
    mod = os.path.join(VALIDATOR, "node_modules", "yaml")
    if not os.path.isdir(mod):
        subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund",
                        "--silent"], cwd=VALIDATOR, check=True, timeout=300)
    return mod


def yaml_docs(text):
    """Every non-empty document of a YAML stream, as Python objects."""
    script = ("const Y=require(process.argv[1]);let s='';process.stdin.on('data',d=>s+=d);"
              "process.stdin.on('end',()=>{const o=Y.parseAllDocuments(s).map(d=>d.toJS())"
              ".filter(x=>x!=null);process.stdout.write(JSON.stringify(o));});")
    out = subprocess.run(["node", "-e", script, _yaml_module()], input=text, check=True,
                         stdout=subprocess.PIPE, universal_newlines=True, timeout=60)
    return json.loads(out.stdout)


def render(values, namespace="default"):
    """`helm template` with `values` (a dict, written as JSON: JSON is YAML)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(values, f)
        path = f.name
    try:
        out = subprocess.run([helm_bin(), "template", RELEASE, CHART, "-n", namespace,
                              "-f", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=60)
    finally:
        os.unlink(path)
    if out.returncode != 0:
        raise AssertionError("helm template failed:\n" + out.stderr)
    return yaml_docs(out.stdout)


def find(objs, kind, name_suffix=""):
    hits = [o for o in objs if o.get("kind") == kind and
            o["metadata"]["name"].endswith(name_suffix)]
    if len(hits) != 1:
        raise AssertionError("expected one %s *%s, found %d" % (kind, name_suffix, len(hits)))
    return hits[0]


def pod_view(objs):
    """The Deployment's pod as a kubelet sees it."""
    dep = find(objs, "Deployment")
    spec = dep["spec"]["template"]["spec"]
    (c,) = [c for c in spec["containers"] if c["name"] == "tollgate"]
    return {
        "deployment": dep,
        "template": dep["spec"]["template"],
        "args": list(c.get("command", [])) + list(c.get("args", [])),
        "env": c.get("env", []),
        "ports": {p["name"]: p["containerPort"] for p in c.get("ports", [])},
        "readiness": c["readinessProbe"],
        "liveness": c["livenessProbe"],
        "startup": c.get("startupProbe"),
        "mounts": c.get("volumeMounts", []),
        "volumes": {v["name"]: v for v in spec.get("volumes", [])},
        "grace": spec.get("terminationGracePeriodSeconds", 30),
    }


def configmap_files(objs, name):
    """The data of the ConfigMap called `name`."""
    for o in objs:
        if o.get("kind") == "ConfigMap" and o["metadata"]["name"] == name:
            return dict(o.get("data", {}))
    raise AssertionError("no ConfigMap " + name)


def secret_files(objs, name):
    """The decoded data of the Secret called `name` (data and stringData)."""
    for o in objs:
        if o.get("kind") == "Secret" and o["metadata"]["name"] == name:
            files = {k: base64.b64decode(v) for k, v in o.get("data", {}).items()}
            files.update({k: v.encode() for k, v in o.get("stringData", {}).items()})
            return files
    raise AssertionError("no Secret " + name)


def _items(data, items):
    """A volume source's files: every key, or only `items` under their paths."""
    if not items:
        return dict(data)
    out = {}
    for it in items:
        if it["key"] not in data:
            raise AssertionError("volume item %s is not in its source" % it["key"])
        out[it["path"]] = data[it["key"]]
    return out


def volume_files(objs, vol):
    """(files, mode) of a configMap, secret or projected volume; None otherwise."""
    if "configMap" in vol:
        src = vol["configMap"]
        return (_items(configmap_files(objs, src["name"]), src.get("items")),
                src.get("defaultMode", 0o644))
    if "secret" in vol:
        src = vol["secret"]
        return (_items(secret_files(objs, src["secretName"]), src.get("items")),
                src.get("defaultMode", 0o644))
    if "projected" in vol:
        files = {}
        for src in vol["projected"]["sources"]:
            if "secret" in src:
                files.update(_items(secret_files(objs, src["secret"]["name"]),
                                    src["secret"].get("items")))
            elif "configMap" in src:
                files.update(_items(configmap_files(objs, src["configMap"]["name"]),
                                    src["configMap"].get("items")))
            else:
                raise AssertionError("projected source not rehearsed: %r" % src)
        return files, vol["projected"].get("defaultMode", 0o644)
    return None
