"""An AWS-KMS-compatible endpoint on loopback for tests/interop/test_kms.py: moto's own
server (moto 5.2.6, the AWS service double the AWS SDKs' users test against), with one
gap filled.

moto's Sign ignores MessageType=DIGEST: it hashes the digest it is given once more
(moto/kms/models.py says DIGEST "is not yet implemented"), so no signature made that way
verifies. The real service signs the digest as given, and that is what modelseal and
cosign ask for. Here, while a DIGEST request is served, the ECDSA key signs the bytes as
a prehashed digest of the algorithm's hash, after checking their length as the service
does. Everything else is moto's.

Usage: python kms_double.py PORT [CERT_PEM KEY_PEM]   (plain HTTP without a certificate)
"""

from __future__ import annotations

import sys
import threading

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from moto.kms import responses, utils
from moto.kms.exceptions import ValidationException
from moto import server

HASHES = {"ECDSA_SHA_256": hashes.SHA256, "ECDSA_SHA_384": hashes.SHA384, "ECDSA_SHA_512": hashes.SHA512}
_serving = threading.local()

_moto_sign_request = responses.KmsResponse.sign
_moto_sign_with_key = utils.ECDSAPrivateKey.sign


def _sign_request(self):
    _serving.digest = self._get_param("MessageType") == "DIGEST"
    try:
        return _moto_sign_request(self)
    finally:
        _serving.digest = False


def _sign_with_key(self, message: bytes, signing_algorithm: str) -> bytes:
    if not getattr(_serving, "digest", False):
        return _moto_sign_with_key(self, message, signing_algorithm)
    utils.validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
    algorithm = HASHES[signing_algorithm]()
    if len(message) != algorithm.digest_size:
        raise ValidationException(f"Digest is invalid length for algorithm {signing_algorithm}.")
    return self.private_key.sign(message, ec.ECDSA(Prehashed(algorithm)))


responses.KmsResponse.sign = _sign_request
utils.ECDSAPrivateKey.sign = _sign_with_key

if __name__ == "__main__":
    port, *tls = sys.argv[1:4]
    server.main(["-H", "127.0.0.1", "-p", port, *(["-c", tls[0], "-k", tls[1]] if tls else [])])
