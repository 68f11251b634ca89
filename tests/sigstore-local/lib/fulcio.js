'use strict';
// Fulcio v2 front end for the @sigstore/mock certificate authority.
//
// The mock handler reads credentials.oidcIdentityToken, decodes the JWT
// without checking its signature, and puts one claim into the certificate's
// SAN (always as a URI). Two mock handlers are built over the same CA: one
// reads `email`, one reads `sub`. A token with an `email` claim goes to the
// first (as real Fulcio does for email issuers), any other token to the second.
//
// The token may also come as "Authorization: Bearer <jwt>" (as sigstore-python
// sends it); it is then moved into credentials for the mock.
//
// certificateSigningRequest: the Fulcio API carries base64(PEM CSR); the mock
// wants the PEM itself, so a base64-wrapped PEM is unwrapped first.
//
// With strict=true the token must be signed by this server's OIDC issuer,
// unexpired, with aud "sigstore", and the proof of possession (signature over
// the identity by the submitted key) or the CSR self-signature must verify.
// The mock itself checks none of this.

const crypto = require('crypto');
// The mock loads reflect-metadata, which @peculiar/x509 needs: keep this order.
const { initializeCA, initializeCTLog, fulcioHandler } = require('@sigstore/mock/dist/fulcio');
const x509 = require('@peculiar/x509');
const { toPem } = require('./pem');

function unwrapCsr(value) {
  if (typeof value !== 'string') return value;
  if (value.includes('-----BEGIN')) return value;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  return decoded.includes('-----BEGIN') ? decoded : value;
}

async function createFulcio({ caKeyPair, ctKeyPair, issuer, strict }) {
  const ctlog = await initializeCTLog(ctKeyPair);
  const ca = await initializeCA(caKeyPair, ctlog);
  const byEmail = fulcioHandler(ca, { strict: true, subjectClaim: 'email' });
  const bySub = fulcioHandler(ca, { strict: true, subjectClaim: 'sub' });

  async function checkStrict(req, claims) {
    issuer.verify(req.credentials.oidcIdentityToken);
    const identity = typeof claims.email === 'string' && claims.email ? claims.email : claims.sub;
    if (req.publicKeyRequest) {
      const pk = req.publicKeyRequest;
      if (!pk.proofOfPossession) throw new Error('publicKeyRequest.proofOfPossession is required');
      const key = crypto.createPublicKey(pk.publicKey.content);
      const ok = crypto.verify('sha256', Buffer.from(identity, 'utf8'), key, Buffer.from(pk.proofOfPossession, 'base64'));
      if (!ok) throw new Error('proof of possession does not verify');
    } else {
      const csr = new x509.Pkcs10CertificateRequest(req.certificateSigningRequest);
      if (!(await csr.verify())) throw new Error('CSR signature does not verify');
    }
  }

  // `authorization` is the request's Authorization header, if any: like the
  // real Fulcio, a bearer token there stands in for credentials (sigstore-python
  // sends the token that way).
  async function signingCert(bodyText, authorization) {
    let req;
    let claims;
    try {
      req = JSON.parse(bodyText);
      if (!req || typeof req !== 'object') throw new Error('request must be a JSON object');
      const bearer = /^Bearer\s+(\S+)$/i.exec(authorization || '');
      if (!(req.credentials && typeof req.credentials.oidcIdentityToken === 'string') && bearer) {
        req.credentials = { oidcIdentityToken: bearer[1] };
      }
      if (!req.credentials || typeof req.credentials.oidcIdentityToken !== 'string') {
        throw new Error('credentials.oidcIdentityToken (or an Authorization: Bearer header) is required');
      }
      if (!req.publicKeyRequest && !req.certificateSigningRequest) {
        throw new Error('publicKeyRequest or certificateSigningRequest is required');
      }
      if (req.certificateSigningRequest) req.certificateSigningRequest = unwrapCsr(req.certificateSigningRequest);
      claims = issuer.decode(req.credentials.oidcIdentityToken);
      if (strict) await checkStrict(req, claims);
    } catch (e) {
      return { status: 400, json: { code: 400, message: e.message } };
    }
    const handler = typeof claims.email === 'string' && claims.email ? byEmail : bySub;
    const r = await handler.fn(JSON.stringify(req));
    if (r.statusCode !== 201) {
      return { status: r.statusCode, json: { code: r.statusCode, message: String(r.response) } };
    }
    // The mock writes each PEM as one long base64 line; re-wrap at 64 columns.
    const out = JSON.parse(r.response);
    const chain = out.signedCertificateEmbeddedSct.chain;
    chain.certificates = chain.certificates.map((pem) => toPem('CERTIFICATE', new crypto.X509Certificate(pem).raw));
    return { status: 201, json: out };
  }

  return {
    signingCert,
    rootDer: ca.rootCertificate,
    ctPublicKeyDer: ctKeyPair.publicKey.export({ type: 'spki', format: 'der' }),
  };
}

module.exports = { createFulcio };
