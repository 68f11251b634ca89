'use strict';
// RFC 3161 front end for the @sigstore/mock timestamp authority.
//
// The mock's own HTTP handler takes a JSON request ({artifactHash,
// hashAlgorithm, nonce, certificates}) and stores the nonce as a JS number,
// which loses precision for the 64-bit nonces real clients send. Here we parse
// a DER TimeStampReq ourselves and drive the mock's TSA object directly, after
// replacing the one method that builds TSTInfo so that:
//   - the nonce is copied byte for byte from the request,
//   - the messageImprint (algorithm OID, its NULL parameter if any, digest) is
//     echoed exactly,
//   - genTime has whole seconds (DER GeneralizedTime parsers such as the Rust
//     `der` crate reject fractional seconds),
//   - the serial number is a random positive INTEGER.
// The CMS signing (signed attributes, ESSCertIDv2, key and certificates) is
// the mock's. The SignedData version is raised from 1 to 3, which RFC 5652
// requires when the encapsulated content is not id-data.

const crypto = require('crypto');
const asn1js = require('asn1js');
const pkijs = require('pkijs');
const { initializeTSA, tsaHandler } = require('@sigstore/mock/dist/timestamp');
const der = require('./der');

const OID_SHA256 = '2.16.840.1.101.3.4.2.1';
const OID_SHA384 = '2.16.840.1.101.3.4.2.2';
const OID_SHA512 = '2.16.840.1.101.3.4.2.3';
const DIGEST_LENGTHS = { [OID_SHA256]: 32, [OID_SHA384]: 48, [OID_SHA512]: 64 };
const DEFAULT_POLICY = '1.3.6.1.4.1.57264.2';

// PKIFailureInfo bit numbers (RFC 3161 section 2.4.2)
const FAIL = {
  badAlg: 0,
  badRequest: 2,
  badDataFormat: 5,
  unacceptedPolicy: 15,
  unacceptedExtension: 16,
  systemFailure: 25,
};

class TsaRequestError extends Error {
  constructor(message, failBit) {
    super(message);
    this.failBit = failBit;
  }
}

// Parse a DER TimeStampReq:
//   TimeStampReq ::= SEQUENCE {
//     version        INTEGER { v1(1) },
//     messageImprint MessageImprint,
//     reqPolicy      TSAPolicyId OPTIONAL,
//     nonce          INTEGER OPTIONAL,
//     certReq        BOOLEAN DEFAULT FALSE,
//     extensions     [0] IMPLICIT Extensions OPTIONAL }
function parseTimeStampReq(buf) {
  let top;
  try {
    top = der.readSingle(buf);
    if (top.tag !== der.TAG.SEQUENCE) throw new der.DerError('TimeStampReq is not a SEQUENCE');
    const fields = der.children(top.value);
    if (fields.length < 2) throw new der.DerError('TimeStampReq is too short');

    const [versionEl, imprintEl, ...rest] = fields;
    if (versionEl.tag !== der.TAG.INTEGER || der.smallInteger(versionEl.value) !== 1) {
      throw new TsaRequestError('unsupported TimeStampReq version', FAIL.badRequest);
    }

    if (imprintEl.tag !== der.TAG.SEQUENCE) throw new der.DerError('messageImprint is not a SEQUENCE');
    const imprint = der.children(imprintEl.value);
    if (imprint.length !== 2) throw new der.DerError('messageImprint must have two fields');
    const [algEl, hashEl] = imprint;
    if (algEl.tag !== der.TAG.SEQUENCE) throw new der.DerError('hashAlgorithm is not a SEQUENCE');
    const alg = der.children(algEl.value);
    if (alg.length < 1 || alg.length > 2 || alg[0].tag !== der.TAG.OID) {
      throw new der.DerError('malformed AlgorithmIdentifier');
    }
    const hashAlgorithmOID = der.decodeOid(alg[0].value);
    let hashAlgorithmNullParams = false;
    if (alg.length === 2) {
      if (alg[1].tag !== der.TAG.NULL || alg[1].value.length !== 0) {
        throw new TsaRequestError('hash algorithm parameters must be absent or NULL', FAIL.badAlg);
      }
      hashAlgorithmNullParams = true;
    }
    if (!(hashAlgorithmOID in DIGEST_LENGTHS)) {
      throw new TsaRequestError(`unsupported hash algorithm ${hashAlgorithmOID}`, FAIL.badAlg);
    }
    if (hashEl.tag !== der.TAG.OCTET_STRING) throw new der.DerError('hashedMessage is not an OCTET STRING');
    if (hashEl.value.length !== DIGEST_LENGTHS[hashAlgorithmOID]) {
      throw new TsaRequestError('hashedMessage length does not match the hash algorithm', FAIL.badDataFormat);
    }

    const req = {
      hashAlgorithmOID,
      hashAlgorithmNullParams,
      artifactHash: Buffer.from(hashEl.value),
      policyOID: DEFAULT_POLICY,
      nonce: undefined,
      certReq: false,
    };

    // Optional fields must appear in schema order.
    let stage = 0;
    for (const el of rest) {
      if (el.tag === der.TAG.OID && stage < 1) {
        req.policyOID = der.decodeOid(el.value);
        stage = 1;
      } else if (el.tag === der.TAG.INTEGER && stage < 2) {
        req.nonce = Buffer.from(der.checkInteger(el.value));
        stage = 2;
      } else if (el.tag === der.TAG.BOOLEAN && stage < 3) {
        if (el.value.length !== 1 || (el.value[0] !== 0x00 && el.value[0] !== 0xff)) {
          throw new der.DerError('malformed BOOLEAN');
        }
        req.certReq = el.value[0] === 0xff;
        stage = 3;
      } else if (el.tag === der.TAG.CONTEXT_0_CONSTRUCTED && stage < 4) {
        throw new TsaRequestError('request extensions are not supported', FAIL.unacceptedExtension);
      } else {
        throw new der.DerError(`unexpected field (tag 0x${el.tag.toString(16)}) in TimeStampReq`);
      }
    }
    return req;
  } catch (e) {
    if (e instanceof der.DerError) throw new TsaRequestError(e.message, FAIL.badDataFormat);
    throw e;
  }
}

// TimeStampResp with a rejection status and no token.
function rejection(message, failBit) {
  const statusInfo = der.tlv(der.TAG.SEQUENCE, [
    der.integer(2), // rejection
    der.tlv(der.TAG.SEQUENCE, [der.utf8(message)]),
    der.namedBit(failBit),
  ]);
  return der.tlv(der.TAG.SEQUENCE, [statusInfo]);
}

function randomSerial() {
  const b = crypto.randomBytes(16);
  b[0] = 0x01 + (b[0] % 0x7f); // positive, no leading zero octet
  return b;
}

function nonceInteger(nonce) {
  if (nonce === undefined || nonce === null) return undefined;
  if (Buffer.isBuffer(nonce)) return new asn1js.Integer({ valueHex: nonce });
  // JSON requests (the mock's own format) carry a number.
  return new asn1js.Integer({ value: Number(nonce) });
}

function buildTstInfo(req) {
  const now = Math.floor(Date.now() / 1000) * 1000;
  const hashAlgorithm = new pkijs.AlgorithmIdentifier({
    algorithmId: req.hashAlgorithmOID,
    ...(req.hashAlgorithmNullParams ? { algorithmParams: new asn1js.Null() } : {}),
  });
  const nonce = nonceInteger(req.nonce);
  return new pkijs.TSTInfo({
    version: 1,
    policy: req.policyOID || DEFAULT_POLICY,
    messageImprint: new pkijs.MessageImprint({
      hashAlgorithm,
      hashedMessage: new asn1js.OctetString({ valueHex: req.artifactHash }),
    }),
    serialNumber: new asn1js.Integer({ valueHex: randomSerial() }),
    genTime: new Date(now),
    accuracy: new pkijs.Accuracy({ seconds: 1 }),
    ...(nonce ? { nonce } : {}),
  });
}

async function createTsa(keyPair) {
  const tsa = await initializeTSA(keyPair);
  // Instance-level overrides of two TSAImpl methods (see header comment).
  tsa.tstInfo = buildTstInfo;
  const signedData = tsa.signedData.bind(tsa);
  tsa.signedData = async (...args) => {
    const sd = await signedData(...args);
    sd.version = 3;
    return sd;
  };
  const jsonHandler = tsaHandler(tsa, { strict: true });

  async function handle(body, contentType) {
    const looksJson = /json/i.test(contentType || '') || body[0] === 0x7b; /* '{' */
    if (looksJson) {
      const r = await jsonHandler.fn(body.toString('utf8'));
      return { status: r.statusCode, type: r.contentType || 'text/plain', body: r.response };
    }
    let req;
    try {
      req = parseTimeStampReq(body);
    } catch (e) {
      if (e instanceof TsaRequestError) {
        return { status: 400, type: 'application/timestamp-reply', body: rejection(e.message, e.failBit) };
      }
      throw e;
    }
    const resp = await tsa.timestamp(req);
    return { status: 201, type: 'application/timestamp-reply', body: resp };
  }

  return {
    handle,
    // DER certificates, leaf (the signing certificate) first.
    chain: [tsa.intCertificate, tsa.rootCertificate],
  };
}

module.exports = { createTsa, parseTimeStampReq, rejection, DEFAULT_POLICY };
