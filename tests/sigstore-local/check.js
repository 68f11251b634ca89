#!/usr/bin/env node
'use strict';
// Smoke check of a running server, sending the requests the Rust sigstore
// 0.15 clients send and checking the answers the way sigstore-verify does
// (SCT over the TBS without its SCT extension, SET, checkpoint, strict DER
// TimeStampResp, CMS signature over DER-sorted signed attributes).
//
//   node check.js [OUT_DIR]
//
// With OUT_DIR (the --out-dir of a running server) it checks that server;
// without, it starts its own server.js on a free port and stops it after.
// Prints one line per check and "N passed, M failed"; exits 1 on failure.

const childProcess = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const der = require('./lib/der');

let baseUrl;
let root;

let passed = 0;
let failed = 0;
function check(name, cond, detail) {
  if (cond) {
    passed++;
    process.stdout.write(`ok   ${name}\n`);
  } else {
    failed++;
    process.stdout.write(`FAIL ${name}${detail ? `: ${detail}` : ''}\n`);
  }
}

const sha256 = (b) => crypto.createHash('sha256').update(b).digest();
const spkiKey = (b64) => crypto.createPublicKey({ key: Buffer.from(b64, 'base64'), format: 'der', type: 'spki' });
// The Rust `pem` crate writes CRLF line ends; send PEM that way.
const crlfPem = (label, d) =>
  `-----BEGIN ${label}-----\r\n${d.toString('base64').replace(/(.{64})/g, '$1\r\n').replace(/\r\n$/, '')}\r\n-----END ${label}-----\r\n`;

// JCS for the flat objects used here (string/number values).
const jcs = (o) => `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${JSON.stringify(o[k])}`).join(',')}}`;

async function post(p, body, type = 'application/json') {
  const r = await fetch(baseUrl + p, { method: 'POST', headers: { 'Content-Type': type }, body });
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
}

// Certificate TBS with the SCT-list extension removed, re-encoded (what
// RFC 6962 precert signing covers and what sigstore-verify rebuilds).
function tbsWithoutSct(certDer) {
  const cert = der.readSingle(certDer);
  const [tbs] = der.children(cert.value);
  const fields = der.children(tbs.value);
  let sct = null;
  const raw = (el, within) => Buffer.from(within.subarray(el.start, el.end));
  const parts = [];
  for (const f of fields) {
    if (f.tag !== 0xa3) {
      parts.push(raw(f, tbs.value));
      continue;
    }
    const [extSeq] = der.children(f.value);
    const kept = [];
    for (const ext of der.children(extSeq.value)) {
      const [oid, ...rest] = der.children(ext.value);
      if (der.decodeOid(oid.value) === '1.3.6.1.4.1.11129.2.4.2') {
        sct = der.readSingle(rest[rest.length - 1].value).value; // OCTET STRING in extnValue
      } else {
        kept.push(raw(ext, extSeq.value));
      }
    }
    parts.push(der.tlv(0xa3, [der.tlv(0x30, kept)]));
  }
  return { tbs: der.tlv(0x30, parts), sctList: sct };
}

// extnValue bytes of the extension with this OID, or null.
function extensionValue(certDer, wanted) {
  const [tbs] = der.children(der.readSingle(certDer).value);
  const exts = der.children(tbs.value).find((f) => f.tag === 0xa3);
  for (const ext of der.children(der.children(exts.value)[0].value)) {
    const [oid, ...rest] = der.children(ext.value);
    if (der.decodeOid(oid.value) === wanted) return rest[rest.length - 1].value;
  }
  return null;
}

function parseSct(list) {
  const total = list.readUInt16BE(0);
  if (total !== list.length - 2) throw new Error('bad SCT list length');
  const len = list.readUInt16BE(2);
  const s = list.subarray(4, 4 + len);
  let o = 0;
  const version = s[o++];
  const logId = s.subarray(o, o + 32);
  o += 32;
  const timestamp = s.readBigUInt64BE(o);
  o += 8;
  const extLen = s.readUInt16BE(o);
  const ext = s.subarray(o + 2, o + 2 + extLen);
  o += 2 + extLen;
  const hashAlg = s[o++];
  const sigAlg = s[o++];
  const sigLen = s.readUInt16BE(o);
  const sig = s.subarray(o + 2, o + 2 + sigLen);
  return { version, logId, timestamp, ext, hashAlg, sigAlg, sig };
}

async function main() {
  // ---- OIDC ----
  const email = 'alice@example.com';
  const tokRes = await fetch(`${baseUrl}/oidc/token?sub=${encodeURIComponent(email)}&email=${encodeURIComponent(email)}`);
  const token = await tokRes.text();
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  check('token has iss/sub/aud/exp', claims.iss === `${baseUrl}/oidc` && claims.sub === email && claims.aud === 'sigstore' && claims.exp > Date.now() / 1000);

  // ---- Fulcio (sigstore-fulcio request shape) ----
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const identity = claims.email || claims.sub;
  const fReq = {
    credentials: { oidcIdentityToken: token },
    publicKeyRequest: {
      publicKey: { algorithm: '', content: crlfPem('PUBLIC KEY', publicKey.export({ type: 'spki', format: 'der' })) },
      proofOfPossession: crypto.sign('sha256', Buffer.from(identity), privateKey).toString('base64'),
    },
  };
  const fRes = await post('/api/v2/signingCert', JSON.stringify(fReq));
  check('fulcio signingCert 2xx', fRes.status >= 200 && fRes.status < 300, fRes.body.toString());
  const chainPem = JSON.parse(fRes.body).signedCertificateEmbeddedSct.chain.certificates;
  const leaf = new crypto.X509Certificate(chainPem[0]);
  const caRoot = new crypto.X509Certificate(Buffer.from(root.certificateAuthorities[0].certChain.certificates[0].rawBytes, 'base64'));
  check('leaf signed by trusted-root CA', leaf.verify(caRoot.publicKey));
  check('leaf SAN is the identity', leaf.subjectAltName === `URI:${identity}`, leaf.subjectAltName);
  check('leaf EKU codeSigning', (leaf.keyUsage || []).includes('1.3.6.1.5.5.7.3.3'));
  const issV2 = extensionValue(leaf.raw, '1.3.6.1.4.1.57264.1.8');
  const issV1 = extensionValue(leaf.raw, '1.3.6.1.4.1.57264.1.1');
  check('OIDC issuer in 1.3.6.1.4.1.57264.1.8 (UTF8String) and .1.1 (raw)',
    issV2 && der.readSingle(issV2).tag === 0x0c && der.readSingle(issV2).value.toString() === claims.iss &&
    issV1 && issV1.toString() === claims.iss);
  check('leaf key is the requested key', leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(publicKey.export({ type: 'spki', format: 'der' })));

  const { tbs, sctList } = tbsWithoutSct(leaf.raw);
  const sct = parseSct(sctList);
  const ct = root.ctlogs[0];
  check('SCT log id = trusted-root ctlog keyId', sct.logId.toString('base64') === ct.logId.keyId);
  const caSpki = caRoot.publicKey.export({ type: 'spki', format: 'der' });
  const tsBuf = Buffer.alloc(8);
  tsBuf.writeBigUInt64BE(sct.timestamp);
  const len24 = Buffer.from([(tbs.length >> 16) & 0xff, (tbs.length >> 8) & 0xff, tbs.length & 0xff]);
  const extLen = Buffer.alloc(2);
  extLen.writeUInt16BE(sct.ext.length);
  const signedSct = Buffer.concat([Buffer.from([sct.version, 0]), tsBuf, Buffer.from([0, 1]), sha256(caSpki), len24, tbs, extLen, sct.ext]);
  check('SCT signature (ECDSA-SHA256) verifies with CT key', sct.hashAlg === 4 && sct.sigAlg === 3 && crypto.verify('sha256', signedSct, spkiKey(ct.publicKey.rawBytes), sct.sig));

  // ---- Rekor hashedrekord (sigstore-rekor HashedRekord) ----
  const tlog = root.tlogs[0];
  const rekorKey = spkiKey(tlog.publicKey.rawBytes);
  const artifact = Buffer.from('hello from check.js\n');
  const artifactSig = crypto.sign('sha256', artifact, privateKey);
  const certPemB64 = Buffer.from(crlfPem('CERTIFICATE', leaf.raw)).toString('base64');
  const hr = {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: 'sha256', value: sha256(artifact).toString('hex') } },
      signature: { content: artifactSig.toString('base64'), publicKey: { content: certPemB64 } },
    },
  };
  const checkEntry = (label, resBody) => {
    const map = JSON.parse(resBody);
    const [uuid] = Object.keys(map);
    const e = map[uuid];
    const body = Buffer.from(e.body, 'base64');
    check(`${label}: logID = sha256(rekor SPKI)`, Buffer.from(e.logID, 'hex').toString('base64') === tlog.logId.keyId);
    const setPayload = jcs({ body: e.body, integratedTime: e.integratedTime, logID: e.logID, logIndex: e.logIndex });
    check(`${label}: SET verifies`, crypto.verify('sha256', Buffer.from(setPayload), rekorKey, Buffer.from(e.verification.signedEntryTimestamp, 'base64')));
    const p = e.verification.inclusionProof;
    const leafHash = sha256(Buffer.concat([Buffer.from([0]), body]));
    check(`${label}: inclusion proof (size ${p.treeSize}) root = leaf hash`, p.treeSize === 1 && p.logIndex === 0 && p.rootHash === leafHash.toString('hex'));
    const [note, sigs] = p.checkpoint.split('\n\n');
    const lines = note.split('\n');
    const m = /^\u2014 (\S+) (\S+)$/.exec(sigs.trim());
    const hintSig = Buffer.from(m[2], 'base64');
    check(`${label}: checkpoint root matches and signature verifies`,
      Buffer.from(lines[2], 'base64').equals(leafHash) &&
      hintSig.subarray(0, 4).equals(Buffer.from(tlog.logId.keyId, 'base64').subarray(0, 4)) &&
      crypto.verify('sha256', Buffer.from(`${note}\n`), rekorKey, hintSig.subarray(4)));
    check(`${label}: integratedTime within leaf validity`,
      e.integratedTime >= Date.parse(leaf.validFrom) / 1000 && e.integratedTime <= Date.parse(leaf.validTo) / 1000);
    return { uuid, e, body: JSON.parse(body) };
  };
  const hrRes = await post('/api/v1/log/entries', JSON.stringify(hr));
  check('rekor hashedrekord 201', hrRes.status === 201, hrRes.body.toString());
  const hrEntry = checkEntry('hashedrekord', hrRes.body);
  const loggedPem = Buffer.from(hrEntry.body.spec.signature.publicKey.content, 'base64').toString();
  check('hashedrekord body keeps hash and signature, certificate as "\\n" PEM',
    hrEntry.body.spec.data.hash.value === hr.spec.data.hash.value && hrEntry.body.spec.signature.content === hr.spec.signature.content &&
    !loggedPem.includes('\r') && new crypto.X509Certificate(loggedPem).raw.equals(leaf.raw));

  // ---- Rekor dsse (sigstore-rekor DsseEntry, proposedContent) ----
  const payloadType = 'application/vnd.in-toto+json';
  const payload = Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: 'm', digest: { sha256: sha256(artifact).toString('hex') } }], predicateType: 'https://example.com/p', predicate: {} }));
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${payloadType.length} ${payloadType} ${payload.length} `), payload]);
  const dsseSig = crypto.sign('sha256', pae, privateKey).toString('base64');
  const envelope = JSON.stringify({ payloadType, payload: payload.toString('base64'), signatures: [{ sig: dsseSig, keyid: '' }] });
  const dsse = { apiVersion: '0.0.1', kind: 'dsse', spec: { proposedContent: { envelope, verifiers: [certPemB64] } } };
  const dsRes = await post('/api/v1/log/entries', JSON.stringify(dsse));
  check('rekor dsse 201', dsRes.status === 201, dsRes.body.toString());
  const dsEntry = checkEntry('dsse', dsRes.body);
  const spec = dsEntry.body.spec;
  const verifierDer = new crypto.X509Certificate(Buffer.from(spec.signatures[0].verifier, 'base64').toString()).raw;
  check('dsse body: payloadHash, signature and verifier as Rekor writes them',
    spec.payloadHash.value === sha256(payload).toString('hex') && spec.signatures.length === 1 &&
    spec.signatures[0].signature === dsseSig && verifierDer.equals(leaf.raw) && !spec.proposedContent);
  const badSig = JSON.parse(JSON.stringify(dsse));
  badSig.spec.proposedContent.envelope = envelope.replace(dsseSig, crypto.sign('sha256', Buffer.from('x'), privateKey).toString('base64'));
  check('rekor rejects a DSSE signature the verifier does not match', (await post('/api/v1/log/entries', JSON.stringify(badSig))).status === 400);

  // ---- Rekor reads ----
  const byUuid = await fetch(`${baseUrl}/api/v1/log/entries/${hrEntry.uuid}`);
  check('GET entry by UUID', byUuid.status === 200 && Object.keys(await byUuid.json())[0] === hrEntry.uuid);
  const byIdx = await fetch(`${baseUrl}/api/v1/log/entries?logIndex=${hrEntry.e.logIndex}`);
  check('GET entry by logIndex', byIdx.status === 200 && Object.keys(await byIdx.json())[0] === hrEntry.uuid);
  const found = JSON.parse((await post('/api/v1/index/retrieve', JSON.stringify({ hash: `sha256:${sha256(artifact).toString('hex')}` }))).body);
  check('search index by artifact hash', found.includes(hrEntry.uuid));

  // ---- TSA (sigstore-tsa TimeStampReq: no NULL params, u64 nonce, certReq) ----
  const sigDigest = sha256(artifactSig);
  let nonce = crypto.randomBytes(8);
  nonce[0] |= 0x80; // high bit set: DER needs a leading zero octet
  nonce = Buffer.concat([Buffer.from([0]), nonce]);
  const tsq = der.tlv(0x30, [
    der.integer(1),
    der.tlv(0x30, [der.tlv(0x30, [Buffer.from('0609608648016503040201', 'hex')]), der.tlv(0x04, sigDigest)]),
    der.tlv(0x02, nonce),
    Buffer.from('0101ff', 'hex'),
  ]);
  const tsRes = await post('/api/v1/timestamp', tsq, 'application/timestamp-query');
  check('tsa 2xx', tsRes.status >= 200 && tsRes.status < 300);
  const resp = der.children(der.readSingle(tsRes.body).value);
  const status = der.children(resp[0].value);
  check('tsa status granted', der.smallInteger(status[0].value) === 0);
  const ci = der.children(resp[1].value);
  check('token is signedData', der.decodeOid(ci[0].value) === '1.2.840.113549.1.7.2');
  const sd = der.children(der.readSingle(ci[1].value).value);
  check('SignedData version 3', der.smallInteger(sd[0].value) === 3);
  const eci = der.children(sd[2].value);
  check('eContentType is TSTInfo', der.decodeOid(eci[0].value) === '1.2.840.113549.1.9.16.1.4');
  const tstDer = der.readSingle(eci[1].value).value; // [0] EXPLICIT OCTET STRING -> TSTInfo DER
  const tst = der.children(der.readSingle(tstDer).value);
  const imprint = der.children(tst[2].value);
  const alg = der.children(imprint[0].value);
  check('imprint echoes algorithm (no parameters) and digest', alg.length === 1 && der.decodeOid(alg[0].value) === '2.16.840.1.101.3.4.2.1' && imprint[1].value.equals(sigDigest));
  check('genTime is YYYYMMDDHHMMSSZ', tst[4].tag === 0x18 && /^\d{14}Z$/.test(tst[4].value.toString()));
  const nonceEl = tst.find((el, i) => i > 4 && el.tag === 0x02);
  check('nonce echoed byte for byte', nonceEl && nonceEl.value.equals(nonce));
  const signerInfos = der.children(sd[sd.length - 1].value);
  const si = der.children(signerInfos[0].value);
  const signedAttrsEl = si.find((el) => el.tag === 0xa0);
  const attrs = der.children(signedAttrsEl.value).map((a) => Buffer.from(signedAttrsEl.value.subarray(a.start, a.end)));
  const sorted = [...attrs].sort(Buffer.compare);
  check('signed attributes in DER SET order', attrs.every((a, i) => a.equals(sorted[i])));
  const mdAttr = der.children(signedAttrsEl.value).map((a) => der.children(a.value)).find(([oid]) => der.decodeOid(oid.value) === '1.2.840.113549.1.9.4');
  check('messageDigest = sha256(TSTInfo)', der.children(mdAttr[1].value)[0].value.equals(sha256(tstDer)));
  const tsaLeaf = new crypto.X509Certificate(Buffer.from(root.timestampAuthorities[0].certChain.certificates[0].rawBytes, 'base64'));
  const tsaRoot = new crypto.X509Certificate(Buffer.from(root.timestampAuthorities[0].certChain.certificates[1].rawBytes, 'base64'));
  const signature = si[si.length - 1].tag === 0x04 ? si[si.length - 1].value : si[si.length - 2].value;
  const attrSet = der.tlv(0x31, sorted);
  check('CMS signature verifies with TSA leaf over re-encoded attributes', crypto.verify('sha256', attrSet, tsaLeaf.publicKey, signature));
  check('TSA leaf chains to TSA root, EKU timeStamping',
    tsaLeaf.verify(tsaRoot.publicKey) && tsaLeaf.checkIssued(tsaRoot) && (tsaLeaf.keyUsage || []).includes('1.3.6.1.5.5.7.3.8'));
}

// Start server.js and resolve once it prints READY.
function startServer(outDir) {
  return new Promise((resolve, reject) => {
    const child = childProcess.spawn(process.execPath, [path.join(__dirname, 'server.js'), '--port', '0', '--out-dir', outDir, '--quiet'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const timer = setTimeout(() => reject(new Error('server did not print READY within 30 s')), 30000);
    child.stdout.on('data', (d) => {
      out += d;
      if (/^READY /m.test(out)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited early (code ${code})`));
    });
  });
}

async function run() {
  let outDir = process.argv[2];
  let child = null;
  if (!outDir) {
    outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sigstore-local-'));
    child = await startServer(outDir);
  }
  try {
    baseUrl = fs.readFileSync(path.join(outDir, 'url'), 'utf8').trim();
    root = JSON.parse(fs.readFileSync(path.join(outDir, 'trusted_root.json'), 'utf8'));
    await main();
  } finally {
    if (child) {
      child.removeAllListeners('exit');
      child.kill('SIGTERM');
      fs.rmSync(outDir, { recursive: true, force: true });
    }
  }
}

run()
  .catch((e) => {
    failed++;
    process.stdout.write(`FAIL exception: ${e.stack || e}\n`);
  })
  .finally(() => {
    process.stdout.write(`${passed} passed, ${failed} failed\n`);
    process.exitCode = failed ? 1 : 0;
  });
