#!/usr/bin/env python3
"""Makes chains/maze.pem: a leaf and 40 CA certificates that share one name and one key,
so each CA appears to issue every other. No trusted root issued any of them: a path
search without a budget explores 40*39*...*33 candidate paths before giving up.
Needs the `cryptography` package; the output is committed: python3 make_maze.py
"""
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from make_chains import OUT, Y, cert

key = ec.generate_private_key(ec.SECP256R1())
leaf_key = ec.generate_private_key(ec.SECP256R1())
leaf = cert("maze-leaf", leaf_key, "maze-ca", key, Y(2024), Y(2039), ku=["digital_signature"],
            eku=[ExtendedKeyUsageOID.CODE_SIGNING])
cas = [cert("maze-ca", key, "maze-ca", key, Y(2020), Y(2040), ca=True, ku=["key_cert_sign"])
       for _ in range(40)]
pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [leaf, *cas])
Path(OUT / "maze.pem").write_bytes(pem)
