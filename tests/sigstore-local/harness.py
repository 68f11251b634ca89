"""Starts the local Sigstore instance (server.js) for a test and mints identity tokens.

Used by tests/interop/test_keyless.py and the Python package's tests. It needs `node`
and this folder's `node_modules` (`npm ci` here; tests/run.sh does it). A missing piece
is an error, never a skip: a keyless test that did not run must not look like one that
passed.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 30  # seconds for the server to print READY


class LocalSigstore:
    """One server process on 127.0.0.1, its trust files in `out_dir`."""

    def __init__(self, out_dir: Path, *extra: str) -> None:
        if not (HERE / "node_modules" / "@sigstore" / "mock").is_dir():
            raise RuntimeError(f"run `npm ci` in {HERE} first (tests/run.sh does)")
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.stderr = open(out_dir / "server.log", "wb")
        self.process = subprocess.Popen(
            ["node", str(HERE / "server.js"), "--port", "0", "--out-dir", str(out_dir), "--quiet", *extra],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        deadline = time.monotonic() + START_TIMEOUT
        line = b""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith(b"READY ") or self.process.poll() is not None:
                break
        if not line.startswith(b"READY "):
            self.close()
            log = (out_dir / "server.log").read_text(errors="replace")
            raise RuntimeError(f"local Sigstore did not start: {line!r}\n{log}")
        self.url = line.split()[1].decode()
        self.issuer = f"{self.url}/oidc"
        self.trusted_root = out_dir / "trusted_root.json"
        self.signing_config = out_dir / "signing_config.json"
        self.trust_config = out_dir / "trust_config.json"

    def token(self, identity: str, **claims: str) -> str:
        """A JWT for `identity` (its `email` and `sub`), with any further claims."""
        query = urllib.parse.urlencode({"sub": identity, "email": identity, **claims})
        with urllib.request.urlopen(f"{self.url}/oidc/token?{query}", timeout=10) as response:
            return response.read().decode()

    def token_file(self, path: Path, identity: str, **claims: str) -> Path:
        path.write_text(self.token(identity, **claims))
        return path

    def trusted_root_json(self) -> dict:
        return json.loads(self.trusted_root.read_text())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()
