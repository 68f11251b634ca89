#!/usr/bin/env python3
"""Makes the certificate chains in chains/ that the certificate tests use.

Each leaf is a test of one rule of spec/oms.md §5. Needs the `cryptography` package;
re-run only to change the set (outputs are committed): python3 make_chains.py
"""
import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OUT = Path(__file__).resolve().parent / "chains"
Y = lambda year: dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc)


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def cert(cn, key, issuer_cn, issuer_key, start, end, ca=False, pathlen=None, ku=None, eku=None, extra=None):
    b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(issuer_cn))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True))
    if ku is not None:
        flags = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                     crl_sign=False, encipher_only=False, decipher_only=False)
        flags.update({k: True for k in ku})
        b = b.add_extension(x509.KeyUsage(**flags), critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if extra is not None:
        b = b.add_extension(extra, critical=True)
    return b.sign(issuer_key, hashes.SHA256())


def write(stem, obj):
    if isinstance(obj, x509.Certificate):
        (OUT / f"{stem}.pem").write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    else:
        (OUT / f"{stem}.key").write_bytes(obj.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def main():
    OUT.mkdir(exist_ok=True)
    k = lambda: ec.generate_private_key(ec.SECP256R1())
    root_key, int_key, other_key = k(), k(), k()
    root = cert("test-root", root_key, "test-root", root_key, Y(2020), Y(2040), ca=True, ku=["key_cert_sign"])
    inter = cert("test-int", int_key, "test-root", root_key, Y(2020), Y(2040), ca=True, pathlen=0, ku=["key_cert_sign"])
    other = cert("other-root", other_key, "other-root", other_key, Y(2020), Y(2040), ca=True, ku=["key_cert_sign"])
    write("root", root), write("int", inter), write("other-root", other)
    sign = ExtendedKeyUsageOID.CODE_SIGNING
    leaves = {
        # name: (start, end, ku, eku, ca, extra)
        "leaf-ok": (Y(2024), Y(2039), ["digital_signature"], [sign], False, None),
        "leaf-expired": (Y(2021), Y(2022), ["digital_signature"], [sign], False, None),
        "leaf-future": (Y(2035), Y(2039), ["digital_signature"], [sign], False, None),
        "leaf-before-ca": (Y(2019), Y(2030), ["digital_signature"], [sign], False, None),
        "leaf-eku-only": (Y(2024), Y(2039), None, [sign], False, None),
        "leaf-server": (Y(2024), Y(2039), ["key_encipherment"], [ExtendedKeyUsageOID.SERVER_AUTH], False, None),
        "leaf-unknown-critical": (Y(2024), Y(2039), ["digital_signature"], [sign], False,
                                  x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")),
    }
    for stem, (start, end, ku, eku, ca, extra) in leaves.items():
        key = k()
        write(stem, key)
        write(stem, cert(stem, key, "test-int", int_key, start, end, ca=ca, ku=ku, eku=eku, extra=extra))
    # A leaf issued by a leaf (not a CA), and a third level under the pathlen-0 CA.
    ok_key = serialization.load_pem_private_key((OUT / "leaf-ok.key").read_bytes(), None)
    key = k()
    write("leaf-by-leaf", key)
    write("leaf-by-leaf", cert("leaf-by-leaf", key, "leaf-ok", ok_key, Y(2024), Y(2039), ku=["digital_signature"], eku=[sign]))
    # A self-signed signing certificate (not a CA), trusted by naming it as the root.
    key = k()
    write("self-signed", key)
    write("self-signed", cert("self-signed", key, "self-signed", key, Y(2024), Y(2039), ku=["digital_signature"], eku=[sign]))
    # The same, for TLS servers only: named as a root, still not a signing certificate.
    key = k()
    write("self-signed-server", key)
    write("self-signed-server", cert("self-signed-server", key, "self-signed-server", key, Y(2024), Y(2039),
                                     ku=["key_encipherment"], eku=[ExtendedKeyUsageOID.SERVER_AUTH]))
    sub_key = k()
    sub = cert("test-sub", sub_key, "test-int", int_key, Y(2020), Y(2040), ca=True, ku=["key_cert_sign"])
    write("sub", sub)
    key = k()
    write("leaf-too-deep", key)
    write("leaf-too-deep", cert("leaf-too-deep", key, "test-sub", sub_key, Y(2024), Y(2039), ku=["digital_signature"], eku=[sign]))


if __name__ == "__main__":
    main()
