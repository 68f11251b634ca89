'use strict';
// Rekor v1 front end for the @sigstore/mock transparency log.
//
// The mock logs the proposed entry exactly as it was posted. A real Rekor
// turns the proposal into a canonical body first, and verifiers compare bundle
// contents with that canonical body. So before handing the entry to the mock:
//   - hashedrekord 0.0.1: keep only spec.data.hash and spec.signature
//     {content, publicKey.content}, the key or certificate re-encoded as
//     canonical PEM, as Rekor does;
//   - dsse 0.0.1 (proposedContent form): verify every envelope signature with
//     one of the proposed verifiers, then log {envelopeHash, payloadHash,
//     signatures[{signature, verifier}]} as Rekor does;
//   - other kinds are logged as posted (the mock's behaviour).
// Entries returned by the mock are remembered so that the read endpoints
// (GET by UUID, GET by logIndex, POST /api/v1/index/retrieve) work.

const crypto = require('crypto');
const { initializeTLog, rekorHandler } = require('@sigstore/mock/dist/rekor');
const { toPem } = require('./pem');

class BadEntry extends Error {}

function sha256hex(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

// Parse a verifier given as base64(PEM) and return { pem (canonical), key }.
function parseVerifier(b64pem) {
  if (typeof b64pem !== 'string') throw new BadEntry('verifier must be a base64 string');
  const text = Buffer.from(b64pem, 'base64').toString('utf8');
  if (!text.includes('-----BEGIN')) throw new BadEntry('verifier is not base64-encoded PEM');
  if (text.includes('CERTIFICATE-----')) {
    let cert;
    try {
      cert = new crypto.X509Certificate(text);
    } catch (e) {
      throw new BadEntry(`cannot parse verifier certificate: ${e.message}`);
    }
    return { pem: toPem('CERTIFICATE', cert.raw), key: cert.publicKey };
  }
  let key;
  try {
    key = crypto.createPublicKey(text);
  } catch (e) {
    throw new BadEntry(`cannot parse verifier public key: ${e.message}`);
  }
  return { pem: toPem('PUBLIC KEY', key.export({ type: 'spki', format: 'der' })), key };
}

// DSSE pre-authentication encoding
function pae(payloadType, payload) {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'),
    type,
    Buffer.from(` ${payload.length} `, 'utf8'),
    payload,
  ]);
}

function verifySig(key, data, sig) {
  const type = key.asymmetricKeyType;
  try {
    if (type === 'ed25519' || type === 'ed448') return crypto.verify(null, data, key, sig);
    if (type === 'ec') {
      const curve = key.asymmetricKeyDetails && key.asymmetricKeyDetails.namedCurve;
      const hash = curve === 'secp384r1' ? 'sha384' : curve === 'secp521r1' ? 'sha512' : 'sha256';
      return crypto.verify(hash, data, key, sig);
    }
    return crypto.verify('sha256', data, key, sig);
  } catch (_) {
    return false;
  }
}

function canonicalHashedRekord(entry) {
  const spec = entry.spec || {};
  const hash = spec.data && spec.data.hash;
  const sig = spec.signature;
  if (!hash || typeof hash.algorithm !== 'string' || typeof hash.value !== 'string') {
    throw new BadEntry('hashedrekord: spec.data.hash.{algorithm,value} required');
  }
  if (!/^[0-9a-f]+$/.test(hash.value)) throw new BadEntry('hashedrekord: hash value must be lowercase hex');
  if (!sig || typeof sig.content !== 'string' || !sig.publicKey || typeof sig.publicKey.content !== 'string') {
    throw new BadEntry('hashedrekord: spec.signature.{content,publicKey.content} required');
  }
  // Like Rekor, store the key or certificate as canonical PEM ("\n" line
  // ends, 64 columns) and the signature as canonical base64, whatever
  // layout the client sent (the Rust clients send CRLF PEM).
  const { pem } = parseVerifier(sig.publicKey.content);
  return {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: hash.algorithm, value: hash.value } },
      signature: {
        content: Buffer.from(sig.content, 'base64').toString('base64'),
        publicKey: { content: Buffer.from(pem, 'utf8').toString('base64') },
      },
    },
  };
}

function canonicalDsse(entry) {
  const pc = entry.spec && entry.spec.proposedContent;
  if (!pc) {
    // Already in canonical form (envelopeHash, payloadHash, signatures).
    return entry;
  }
  if (typeof pc.envelope !== 'string') throw new BadEntry('dsse: proposedContent.envelope must be a string');
  let env;
  try {
    env = JSON.parse(pc.envelope);
  } catch (e) {
    throw new BadEntry(`dsse: envelope is not JSON: ${e.message}`);
  }
  if (typeof env.payload !== 'string' || typeof env.payloadType !== 'string') {
    throw new BadEntry('dsse: envelope needs payload and payloadType');
  }
  if (!Array.isArray(env.signatures) || env.signatures.length === 0) {
    throw new BadEntry('dsse: envelope has no signatures');
  }
  const verifiers = (pc.verifiers || []).map(parseVerifier);
  if (verifiers.length === 0) throw new BadEntry('dsse: proposedContent.verifiers is empty');
  const payload = Buffer.from(env.payload, 'base64');
  const signed = pae(env.payloadType, payload);
  const signatures = env.signatures.map((s) => {
    const sig = Buffer.from(s.sig || '', 'base64');
    const v = verifiers.find((cand) => verifySig(cand.key, signed, sig));
    if (!v) throw new BadEntry('dsse: a signature is not verified by any proposed verifier');
    return { signature: s.sig, verifier: Buffer.from(v.pem, 'utf8').toString('base64') };
  });
  signatures.sort((a, b) => (a.signature < b.signature ? -1 : a.signature > b.signature ? 1 : 0));
  return {
    apiVersion: '0.0.1',
    kind: 'dsse',
    spec: {
      envelopeHash: { algorithm: 'sha256', value: sha256hex(Buffer.from(pc.envelope, 'utf8')) },
      payloadHash: { algorithm: 'sha256', value: sha256hex(payload) },
      signatures,
    },
  };
}

// Search-index keys for an entry body, roughly as Rekor computes them.
function indexKeys(body) {
  const keys = [];
  try {
    if (body.kind === 'hashedrekord') {
      const h = body.spec.data.hash;
      keys.push(`${h.algorithm}:${h.value}`.toLowerCase());
    } else if (body.kind === 'dsse') {
      const h = body.spec.payloadHash;
      if (h) keys.push(`${h.algorithm}:${h.value}`.toLowerCase());
    }
  } catch (_) {
    /* no keys */
  }
  return keys;
}

async function createRekor(baseUrl, keyPair, options = {}) {
  const tlog = await initializeTLog(baseUrl, keyPair);
  const offsetMs = (options.clockOffsetSeconds || 0) * 1000;
  if (offsetMs) {
    // The mock reads its clock through this property; a shifted clock is a log whose
    // integratedTime does not fall inside the certificate's validity.
    tlog.getCurrentTime = () => Date.now() + offsetMs;
  }
  const handler = rekorHandler(tlog, { strict: true });
  const byUuid = new Map();
  const byIndex = new Map();
  const byKey = new Map();

  async function createEntry(bodyText) {
    let proposed;
    try {
      proposed = JSON.parse(bodyText);
    } catch (e) {
      return { status: 400, json: { code: 400, message: `invalid JSON: ${e.message}` } };
    }
    let canonical;
    try {
      if (proposed && proposed.kind === 'hashedrekord' && proposed.apiVersion === '0.0.1') {
        canonical = canonicalHashedRekord(proposed);
      } else if (proposed && proposed.kind === 'dsse' && proposed.apiVersion === '0.0.1') {
        canonical = canonicalDsse(proposed);
      } else {
        canonical = proposed;
      }
    } catch (e) {
      if (e instanceof BadEntry) return { status: 400, json: { code: 400, message: e.message } };
      throw e;
    }
    const r = await handler.fn(JSON.stringify(canonical));
    if (r.statusCode !== 201) {
      return { status: r.statusCode, json: { code: r.statusCode, message: String(r.response) } };
    }
    const result = JSON.parse(r.response);
    for (const [uuid, entry] of Object.entries(result)) {
      byUuid.set(uuid, entry);
      byIndex.set(entry.logIndex, uuid);
      for (const k of indexKeys(canonical)) {
        if (!byKey.has(k)) byKey.set(k, []);
        byKey.get(k).push(uuid);
      }
    }
    return { status: 201, json: result, location: `/api/v1/log/entries/${Object.keys(result)[0]}` };
  }

  function getByUuid(uuid) {
    // Rekor accepts either the bare UUID or a tree-ID-prefixed one (16 hex chars + UUID).
    const id = uuid.length === 80 ? uuid.slice(16) : uuid;
    const entry = byUuid.get(id);
    return entry ? { [id]: entry } : null;
  }

  function getByIndex(index) {
    const uuid = byIndex.get(index);
    return uuid ? { [uuid]: byUuid.get(uuid) } : null;
  }

  function search(query) {
    const out = new Set();
    const want = [];
    if (query && typeof query.hash === 'string') {
      want.push(query.hash.includes(':') ? query.hash.toLowerCase() : `sha256:${query.hash.toLowerCase()}`);
    }
    for (const k of want) for (const u of byKey.get(k) || []) out.add(u);
    return [...out];
  }

  return {
    createEntry,
    getByUuid,
    getByIndex,
    search,
    publicKeyDer: keyPair.publicKey.export({ type: 'spki', format: 'der' }),
  };
}

module.exports = { createRekor, pae };
