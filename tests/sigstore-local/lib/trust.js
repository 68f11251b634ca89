'use strict';
// Trust material for clients: TrustedRoot v0.1, SigningConfig v0.2 and the
// ClientTrustConfig that bundles both (protobuf-specs JSON encoding).

const crypto = require('crypto');

const b64 = (buf) => Buffer.from(buf).toString('base64');
const keyId = (spkiDer) => crypto.createHash('sha256').update(spkiDer).digest('base64');
// RFC 3339 without fractional seconds
const rfc3339 = (date) => date.toISOString().replace(/\.\d{3}Z$/, 'Z');

function publicKeyEntry(spkiDer, start) {
  return {
    rawBytes: b64(spkiDer),
    keyDetails: 'PKIX_ECDSA_P256_SHA_256',
    validFor: { start },
  };
}

function trustedRoot({ baseUrl, validFrom, fulcioRootDer, ctPublicKeyDer, rekorPublicKeyDer, tsaChainDer }) {
  const start = rfc3339(validFrom);
  return {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [
      {
        baseUrl,
        hashAlgorithm: 'SHA2_256',
        publicKey: publicKeyEntry(rekorPublicKeyDer, start),
        logId: { keyId: keyId(rekorPublicKeyDer) },
      },
    ],
    certificateAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
        uri: baseUrl,
        certChain: { certificates: [{ rawBytes: b64(fulcioRootDer) }] },
        validFor: { start },
      },
    ],
    ctlogs: [
      {
        baseUrl: `${baseUrl}/ct`,
        hashAlgorithm: 'SHA2_256',
        publicKey: publicKeyEntry(ctPublicKeyDer, start),
        logId: { keyId: keyId(ctPublicKeyDer) },
      },
    ],
    timestampAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'tsa' },
        uri: `${baseUrl}/api/v1/timestamp`,
        certChain: { certificates: tsaChainDer.map((der) => ({ rawBytes: b64(der) })) },
        validFor: { start },
      },
    ],
  };
}

function signingConfig({ baseUrl, validFrom }) {
  const endpoint = (url) => ({
    url,
    majorApiVersion: 1,
    validFor: { start: rfc3339(validFrom) },
    operator: 'sigstore-local',
  });
  return {
    mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json',
    caUrls: [endpoint(baseUrl)],
    oidcUrls: [endpoint(`${baseUrl}/oidc`)],
    rekorTlogUrls: [endpoint(baseUrl)],
    tsaUrls: [endpoint(`${baseUrl}/api/v1/timestamp`)],
    rekorTlogConfig: { selector: 'ANY' },
    tsaConfig: { selector: 'ANY' },
  };
}

function clientTrustConfig(root, signing) {
  return {
    mediaType: 'application/vnd.dev.sigstore.clienttrustconfig.v0.1+json',
    trustedRoot: root,
    signingConfig: signing,
  };
}

module.exports = { trustedRoot, signingConfig, clientTrustConfig, keyId, rfc3339 };
