#!/usr/bin/env node
'use strict';
// Local Sigstore instance for tests: Fulcio, Rekor (v1), an RFC 3161 TSA and
// a token-minting OIDC issuer on one plain-HTTP port of 127.0.0.1, built on
// the service doubles of @sigstore/mock. See README.md.
//
//   node server.js [--port N] [--out-dir DIR] [--strict] [--quiet]

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');

const { createFulcio } = require('./lib/fulcio');
const { createRekor } = require('./lib/rekor');
const { toPem } = require('./lib/pem');
const { createTsa } = require('./lib/tsa');
const { createIssuer } = require('./lib/oidc');
const trust = require('./lib/trust');

const HOST = '127.0.0.1';
const MAX_BODY = 64 * 1024 * 1024;

function usage(code) {
  const text = `usage: node server.js [--port N] [--out-dir DIR] [--strict] [--quiet] [--rekor-clock-offset S]
  --port N       TCP port on ${HOST} (default 0: pick a free one)
  --out-dir DIR  write trusted_root.json, signing_config.json, trust_config.json,
                 url and PEM files there before printing READY
  --strict       Fulcio checks the token (signature by this issuer, exp, aud)
                 and the proof of possession; off by default, like the mock
  --quiet        no request log on stderr
  --rekor-clock-offset S
                 Rekor records integratedTime S seconds from now (may be
                 negative): a log whose clock is off, for the tests that
                 check a certificate against the log's time
Prints "READY <url>" on stdout once listening; runs until killed.\n`;
  (code ? process.stderr : process.stdout).write(text);
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { port: 0, outDir: null, strict: false, quiet: false, rekorClockOffset: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const eq = a.indexOf('=');
      if (eq !== -1) return a.slice(eq + 1);
      if (i + 1 >= argv.length) usage(2);
      return argv[++i];
    };
    if (a === '--port' || a.startsWith('--port=')) {
      opts.port = Number(value());
      if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) usage(2);
    } else if (a === '--out-dir' || a.startsWith('--out-dir=')) {
      opts.outDir = value();
    } else if (a === '--rekor-clock-offset' || a.startsWith('--rekor-clock-offset=')) {
      opts.rekorClockOffset = Number(value());
      if (!Number.isInteger(opts.rekorClockOffset)) usage(2);
    } else if (a === '--strict') {
      opts.strict = true;
    } else if (a === '--quiet') {
      opts.quiet = true;
    } else if (a === '--help' || a === '-h') {
      usage(0);
    } else {
      process.stderr.write(`unknown argument: ${a}\n`);
      usage(2);
    }
  }
  return opts;
}

function writeAtomic(dir, name, content) {
  const file = path.join(dir, name);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, content);
  fs.renameSync(tmp, file);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('request body too large'), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res, status, type, body, extraHeaders = {}) {
  const buf = Buffer.isBuffer(body) || body instanceof Uint8Array ? Buffer.from(body) : Buffer.from(String(body));
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': buf.length, ...extraHeaders });
  res.end(buf);
}

const sendJson = (res, status, obj, extra) =>
  send(res, status, 'application/json', JSON.stringify(obj), extra);
const sendError = (res, status, message) => sendJson(res, status, { code: status, message });

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const startedAt = new Date();
  let services = null; // set once initialised

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      process.stderr.write(`error handling ${req.method} ${req.url}: ${e.stack || e}\n`);
      if (!res.headersSent) sendError(res, e.status || 500, e.message || 'internal error');
      else res.destroy();
    });
  });

  async function handle(req, res) {
    const url = new URL(req.url, 'http://localhost');
    const p = url.pathname.replace(/\/+$/, '') || '/';
    const m = req.method;
    if (!opts.quiet) {
      res.on('finish', () => process.stderr.write(`${m} ${url.pathname}${url.search} -> ${res.statusCode}\n`));
    }
    if (!services) return sendError(res, 503, 'starting');
    const s = services;
    const body = m === 'POST' || m === 'PUT' ? await readBody(req) : Buffer.alloc(0);

    // ---- Fulcio ----
    if (p === '/api/v2/signingCert' && m === 'POST') {
      const r = await s.fulcio.signingCert(body.toString('utf8'), req.headers.authorization);
      return sendJson(res, r.status, r.json);
    }
    if (p === '/api/v2/configuration' && m === 'GET') {
      return sendJson(res, 200, {
        issuers: [{ issuerUrl: s.issuer.issuerUrl, audience: 'sigstore', challengeClaim: 'email', issuerType: 'email' }],
      });
    }
    if (p === '/api/v2/trustBundle' && m === 'GET') {
      // Fulcio's API puts `certificates` directly in each chain; sigstore-fulcio
      // 0.15 reads chains[].chain.certificates. Serve both spellings.
      const certificates = [toPem('CERTIFICATE', s.fulcio.rootDer)];
      return sendJson(res, 200, { chains: [{ certificates, chain: { certificates } }] });
    }

    // ---- Rekor v1 ----
    if (p === '/api/v1/log/entries' && m === 'POST') {
      const r = await s.rekor.createEntry(body.toString('utf8'));
      return sendJson(res, r.status, r.json, r.location ? { Location: r.location } : {});
    }
    if (p === '/api/v1/log/entries' && m === 'GET') {
      const idx = url.searchParams.get('logIndex');
      if (idx === null || !/^\d+$/.test(idx)) return sendError(res, 400, 'logIndex query parameter required');
      const e = s.rekor.getByIndex(Number(idx));
      return e ? sendJson(res, 200, e) : sendError(res, 404, 'entry not found');
    }
    if (p.startsWith('/api/v1/log/entries/') && m === 'GET') {
      const e = s.rekor.getByUuid(p.slice('/api/v1/log/entries/'.length).toLowerCase());
      return e ? sendJson(res, 200, e) : sendError(res, 404, 'entry not found');
    }
    if (p === '/api/v1/index/retrieve' && m === 'POST') {
      let q;
      try {
        q = JSON.parse(body.toString('utf8'));
      } catch (e) {
        return sendError(res, 400, `invalid JSON: ${e.message}`);
      }
      return sendJson(res, 200, s.rekor.search(q));
    }
    if (p === '/api/v1/log/publicKey' && m === 'GET') {
      return send(res, 200, 'application/x-pem-file', toPem('PUBLIC KEY', s.rekor.publicKeyDer));
    }

    // ---- TSA ----
    if (p === '/api/v1/timestamp' && m === 'POST') {
      const r = await s.tsa.handle(body, req.headers['content-type']);
      return send(res, r.status, r.type, r.body);
    }
    if (p === '/api/v1/timestamp/certchain' && m === 'GET') {
      return send(res, 200, 'application/pem-certificate-chain', s.tsa.chain.map((d) => toPem('CERTIFICATE', d)).join(''));
    }

    // ---- OIDC ----
    // GitHub Actions' ID token endpoint, as ACTIONS_ID_TOKEN_REQUEST_URL names it: a
    // bearer request token, the audience as a query parameter, {"value": JWT} back.
    if (p === '/oidc/github' && m === 'GET') {
      const auth = req.headers.authorization || '';
      if (!/^Bearer \S+/.test(auth)) return sendError(res, 401, 'missing request token');
      const params = new URLSearchParams(url.search);
      if (params.has('audience')) {
        params.set('aud', params.get('audience'));
        params.delete('audience');
      }
      let minted;
      try {
        minted = s.issuer.mint(params);
      } catch (e) {
        return sendError(res, 400, e.message);
      }
      return sendJson(res, 200, { count: 1, value: minted.token });
    }
    if (p === '/oidc/token' && (m === 'GET' || m === 'POST')) {
      const params = new URLSearchParams(url.search);
      if (m === 'POST' && body.length) {
        const ct = req.headers['content-type'] || '';
        if (/json/i.test(ct)) {
          let obj;
          try {
            obj = JSON.parse(body.toString('utf8'));
          } catch (e) {
            return sendError(res, 400, `invalid JSON: ${e.message}`);
          }
          for (const [k, v] of Object.entries(obj || {})) params.set(k, String(v));
        } else {
          for (const [k, v] of new URLSearchParams(body.toString('utf8'))) params.set(k, v);
        }
      }
      let minted;
      try {
        minted = s.issuer.mint(params);
      } catch (e) {
        return sendError(res, 400, e.message);
      }
      if (m === 'POST' || params.get('format') === 'json') {
        return sendJson(res, 200, {
          access_token: minted.token,
          id_token: minted.token,
          token_type: 'Bearer',
          expires_in: minted.expiresIn,
          claims: minted.claims,
        });
      }
      return send(res, 200, 'text/plain', minted.token);
    }
    if (p === '/oidc/.well-known/openid-configuration' && m === 'GET') {
      return sendJson(res, 200, s.issuer.discovery(s.baseUrl));
    }
    if (p === '/oidc/jwks' && m === 'GET') {
      return sendJson(res, 200, s.issuer.jwks());
    }

    // ---- misc ----
    if (p === '/healthz' && m === 'GET') return send(res, 200, 'text/plain', 'ok\n');
    if (p === '/' && m === 'GET') {
      return sendJson(res, 200, {
        url: s.baseUrl,
        fulcio: `${s.baseUrl}/api/v2/signingCert`,
        rekor: `${s.baseUrl}/api/v1/log/entries`,
        tsa: `${s.baseUrl}/api/v1/timestamp`,
        oidcIssuer: s.issuer.issuerUrl,
        token: `${s.baseUrl}/oidc/token?sub=IDENTITY`,
        strict: opts.strict,
      });
    }
    return sendError(res, 404, `no route for ${m} ${url.pathname}`);
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, HOST, resolve);
  });
  const { port } = server.address();
  const baseUrl = `http://${HOST}:${port}`;

  const keyPair = () => crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const issuer = createIssuer(`${baseUrl}/oidc`);
  const fulcio = await createFulcio({ caKeyPair: keyPair(), ctKeyPair: keyPair(), issuer, strict: opts.strict });
  const rekor = await createRekor(baseUrl, keyPair(), { clockOffsetSeconds: opts.rekorClockOffset });
  const tsa = await createTsa(keyPair());

  // Trust material is valid from a little before start-up, so clock skew
  // between this process and a verifier cannot put "now" before it.
  const validFrom = new Date(Math.floor(startedAt.getTime() / 1000) * 1000 - 3600 * 1000);
  const root = trust.trustedRoot({
    baseUrl,
    validFrom,
    fulcioRootDer: fulcio.rootDer,
    ctPublicKeyDer: fulcio.ctPublicKeyDer,
    rekorPublicKeyDer: rekor.publicKeyDer,
    tsaChainDer: tsa.chain,
  });
  const signing = trust.signingConfig({ baseUrl, validFrom });

  if (opts.outDir) {
    fs.mkdirSync(opts.outDir, { recursive: true });
    const json = (o) => `${JSON.stringify(o, null, 2)}\n`;
    writeAtomic(opts.outDir, 'fulcio_root.pem', toPem('CERTIFICATE', fulcio.rootDer));
    writeAtomic(opts.outDir, 'ctlog_public_key.pem', toPem('PUBLIC KEY', fulcio.ctPublicKeyDer));
    writeAtomic(opts.outDir, 'rekor_public_key.pem', toPem('PUBLIC KEY', rekor.publicKeyDer));
    writeAtomic(opts.outDir, 'tsa_leaf.pem', toPem('CERTIFICATE', tsa.chain[0]));
    writeAtomic(opts.outDir, 'tsa_root.pem', toPem('CERTIFICATE', tsa.chain[1]));
    writeAtomic(opts.outDir, 'tsa_chain.pem', tsa.chain.map((d) => toPem('CERTIFICATE', d)).join(''));
    writeAtomic(opts.outDir, 'trusted_root.json', json(root));
    writeAtomic(opts.outDir, 'signing_config.json', json(signing));
    writeAtomic(opts.outDir, 'trust_config.json', json(trust.clientTrustConfig(root, signing)));
    // `url` last: its presence means every other file is complete.
    writeAtomic(opts.outDir, 'url', `${baseUrl}\n`);
  }

  services = { baseUrl, issuer, fulcio, rekor, tsa };

  const stop = () => {
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.on('error', () => {}); // reader went away: keep serving

  process.stdout.write(`READY ${baseUrl}\n`);
}

main().catch((e) => {
  process.stderr.write(`sigstore-local: ${e.stack || e}\n`);
  process.exit(1);
});
