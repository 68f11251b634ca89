#!/usr/bin/env python3
"""What a kubelet would do for one container of a Deployment in the API server, on this
machine without a container runtime: read the Deployment as the API server stored it,
fill ROOT with each of the container's volumes at its mountPath (ConfigMap and Secret
keys as files, `items` honoured, Secret data decoded; a PersistentVolumeClaim copied from
the directory given for it with --pvc), and print the container's args and env as JSON.

Usage: kubelet.py NAMESPACE DEPLOYMENT CONTAINER ROOT [--pvc CLAIM=DIR ...]
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys


def kubectl_json(*args):
    out = subprocess.run(["kubectl", *args, "-o", "json"], check=True, capture_output=True)
    return json.loads(out.stdout)


def write_keys(target, data, items, decode):
    os.makedirs(target, exist_ok=True)
    paths = {item["key"]: item["path"] for item in items} if items else {k: k for k in data}
    for key, path in paths.items():
        if key not in data:
            sys.exit(f"kubelet.py: key {key} is not in the object")
        value = base64.b64decode(data[key]) if decode else data[key].encode()
        dest = os.path.join(target, path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            f.write(value)
        os.chmod(dest, 0o644)  # the kubelet's defaultMode


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("namespace")
    parser.add_argument("deployment")
    parser.add_argument("container")
    parser.add_argument("root")
    parser.add_argument("--pvc", action="append", default=[])
    args = parser.parse_args()
    claims = dict(p.split("=", 1) for p in args.pvc)
    ns = ["-n", args.namespace]
    deployment = kubectl_json("get", "deployment", args.deployment, *ns)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == args.container]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        target = os.path.join(args.root, mount["mountPath"].lstrip("/"))
        if "configMap" in volume:
            source = volume["configMap"]
            cm = kubectl_json("get", "configmap", source["name"], *ns)
            write_keys(target, cm.get("data", {}), source.get("items"), decode=False)
        elif "secret" in volume:
            source = volume["secret"]
            secret = kubectl_json("get", "secret", source["secretName"], *ns)
            write_keys(target, secret.get("data", {}), source.get("items"), decode=True)
        elif "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            kubectl_json("get", "persistentvolumeclaim", claim, *ns)  # it must exist
            shutil.copytree(claims[claim], target)
        else:
            sys.exit(f"kubelet.py: volume {mount['name']} is of a kind this script does not mount")
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    print(json.dumps({"args": container.get("args", []), "env": env, "image": container["image"]}))


if __name__ == "__main__":
    main()
