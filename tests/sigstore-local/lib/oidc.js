'use strict';
// A stand-in OIDC issuer: mints ES256 JWT identity tokens for any subject the
// caller names. There is no login; whoever can reach 127.0.0.1 gets a token.

const crypto = require('crypto');

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// Query parameters with a fixed meaning; any other parameter becomes an extra
// string claim (e.g. GitHub-style claims that the mock Fulcio copies into
// certificate extensions).
const RESERVED = new Set(['sub', 'email', 'iss', 'aud', 'ttl', 'format', 'email_verified']);

function createIssuer(issuerUrl) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = crypto
    .createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);

  function sign(claims) {
    const header = { alg: 'ES256', typ: 'JWT', kid };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return `${input}.${b64url(sig)}`;
  }

  // params: URLSearchParams
  function mint(params) {
    const now = Math.floor(Date.now() / 1000);
    const ttlRaw = params.get('ttl');
    const ttl = ttlRaw === null ? 600 : Number(ttlRaw);
    if (!Number.isFinite(ttl)) throw new Error('ttl must be a number of seconds');
    const email = params.get('email');
    const sub = params.get('sub') || email || 'test@example.com';
    const claims = {
      iss: params.get('iss') || issuerUrl,
      sub,
      aud: params.get('aud') || 'sigstore',
      iat: now,
      nbf: now - 1,
      exp: now + ttl,
    };
    if (email) {
      claims.email = email;
      claims.email_verified = params.get('email_verified') !== 'false';
    }
    for (const [k, v] of params) {
      if (!RESERVED.has(k) && !(k in claims)) claims[k] = v;
    }
    return { token: sign(claims), claims, expiresIn: ttl };
  }

  function jwks() {
    const jwk = publicKey.export({ format: 'jwk' });
    return { keys: [{ ...jwk, kid, alg: 'ES256', use: 'sig' }] };
  }

  function discovery(baseUrl) {
    return {
      issuer: issuerUrl,
      jwks_uri: `${issuerUrl}/jwks`,
      token_endpoint: `${issuerUrl}/token`,
      // No interactive login exists; these are listed only so that
      // discovery-document parsers find the fields they expect.
      authorization_endpoint: `${issuerUrl}/auth`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256'],
      claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'email', 'email_verified'],
      service_documentation: `${baseUrl}/`,
    };
  }

  // Decode a JWT payload without verifying anything.
  function decode(token) {
    if (typeof token !== 'string') throw new Error('token must be a string');
    const parts = token.split('.');
    if (parts.length !== 3) throw new Error('token is not a JWT');
    return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  }

  // Checks used by --strict: our signature, time window, audience.
  function verify(token) {
    const parts = token.split('.');
    if (parts.length !== 3) throw new Error('token is not a JWT');
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    if (header.alg !== 'ES256') throw new Error('token must be ES256-signed by this issuer');
    const ok = crypto.verify(
      'sha256',
      Buffer.from(`${parts[0]}.${parts[1]}`),
      { key: publicKey, dsaEncoding: 'ieee-p1363' },
      Buffer.from(parts[2], 'base64url'),
    );
    if (!ok) throw new Error('token signature is not from this issuer');
    const claims = decode(token);
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.exp !== 'number' || claims.exp < now) throw new Error('token is expired');
    if (typeof claims.nbf === 'number' && claims.nbf > now + 60) throw new Error('token is not yet valid');
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes('sigstore')) throw new Error('token audience must include "sigstore"');
    if (typeof claims.sub !== 'string' || !claims.sub) throw new Error('token has no sub');
    return claims;
  }

  return { mint, jwks, discovery, decode, verify, issuerUrl };
}

module.exports = { createIssuer };
