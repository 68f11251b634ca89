"""Pushes a model folder to a registry as a CNCF ModelPack artifact (the test harness's
`build_modelpack`, over the registry's HTTP API) and prints the manifest digest.

usage: push_model.py HOST CA_PEM REPOSITORY TAG MODEL_DIR"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/oci"))
import registry  # noqa: E402
import requests  # noqa: E402


class Remote:
    """What `registry.push_artifact` needs of a registry: blob and manifest uploads."""

    def __init__(self, host: str, ca: str):
        self.base = f"https://{host}/v2"
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = ca

    def put_blob(self, repo, data, digest=None):
        digest = digest or registry.sha256_digest(data)
        start = self.session.post(f"{self.base}/{repo}/blobs/uploads/", timeout=30)
        start.raise_for_status()
        location = requests.compat.urljoin(f"{self.base}/", start.headers["Location"])
        sep = "&" if "?" in location else "?"
        done = self.session.put(f"{location}{sep}digest={digest}", data=data, timeout=60,
                                headers={"Content-Type": "application/octet-stream"})
        done.raise_for_status()
        return digest

    def put_manifest(self, repo, ref, data, media_type):
        resp = self.session.put(f"{self.base}/{repo}/manifests/{ref}", data=data, timeout=30,
                                headers={"Content-Type": media_type})
        resp.raise_for_status()
        return registry.sha256_digest(data)


host, ca, repo, tag, model = sys.argv[1:6]
art = registry.build_modelpack(Path(model), media="tar")
print(registry.push_artifact(Remote(host, ca), repo, tag, art, client="http"))
