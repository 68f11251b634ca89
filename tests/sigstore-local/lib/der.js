'use strict';
// Minimal DER reader/writer: just enough to parse an RFC 3161 TimeStampReq
// and to build a rejection TimeStampResp. Strict: definite lengths only,
// minimal length encodings, no trailing garbage.

const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  SEQUENCE: 0x30,
  CONTEXT_0_CONSTRUCTED: 0xa0,
};

class DerError extends Error {}

// Read one TLV starting at `offset` of `buf`. Returns
// { tag, value (Buffer view), start, end } where end is the offset just past
// the element.
function readTlv(buf, offset = 0) {
  if (offset + 2 > buf.length) throw new DerError('truncated DER element');
  const tag = buf[offset];
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not supported');
  let pos = offset + 1;
  let len = buf[pos++];
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError('indefinite length is not DER');
    if (n > 4) throw new DerError('DER length too large');
    if (pos + n > buf.length) throw new DerError('truncated DER length');
    if (buf[pos] === 0) throw new DerError('non-minimal DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos++];
    if (len < 0x80) throw new DerError('non-minimal DER length');
  }
  const end = pos + len;
  if (end > buf.length) throw new DerError('truncated DER value');
  return { tag, value: buf.subarray(pos, end), start: offset, end };
}

// Parse the whole buffer as exactly one element.
function readSingle(buf) {
  const el = readTlv(buf, 0);
  if (el.end !== buf.length) throw new DerError('trailing data after DER element');
  return el;
}

// Split the contents of a constructed element into its children.
function children(value) {
  const out = [];
  let pos = 0;
  while (pos < value.length) {
    const el = readTlv(value, pos);
    out.push(el);
    pos = el.end;
  }
  return out;
}

function decodeOid(value) {
  if (value.length === 0) throw new DerError('empty OID');
  const arcs = [];
  let acc = 0n;
  let first = true;
  for (let i = 0; i < value.length; i++) {
    const b = value[i];
    if (acc === 0n && b === 0x80) throw new DerError('non-minimal OID arc');
    acc = (acc << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      if (first) {
        const x = acc < 40n ? 0n : acc < 80n ? 1n : 2n;
        arcs.push(x, acc - x * 40n);
        first = false;
      } else {
        arcs.push(acc);
      }
      acc = 0n;
    } else if (i === value.length - 1) {
      throw new DerError('truncated OID');
    }
  }
  return arcs.map(String).join('.');
}

// Check that an INTEGER's content octets are minimally encoded.
function checkInteger(value) {
  if (value.length === 0) throw new DerError('empty INTEGER');
  if (value.length > 1) {
    if (value[0] === 0x00 && (value[1] & 0x80) === 0) throw new DerError('non-minimal INTEGER');
    if (value[0] === 0xff && (value[1] & 0x80) !== 0) throw new DerError('non-minimal INTEGER');
  }
  return value;
}

function smallInteger(value) {
  checkInteger(value);
  if (value.length > 6 || (value[0] & 0x80)) throw new DerError('INTEGER out of range');
  return value.readUIntBE(0, value.length);
}

// ---- writer ----

function encodeLength(len) {
  if (len < 0x80) return Buffer.from([len]);
  const bytes = [];
  while (len > 0) {
    bytes.unshift(len & 0xff);
    len = Math.floor(len / 256);
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag, content) {
  const body = Buffer.isBuffer(content) ? content : Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), encodeLength(body.length), body]);
}

function integer(n) {
  const bytes = [];
  let v = n;
  do {
    bytes.unshift(v & 0xff);
    v = Math.floor(v / 256);
  } while (v > 0);
  if (bytes[0] & 0x80) bytes.unshift(0);
  return tlv(TAG.INTEGER, Buffer.from(bytes));
}

// A BIT STRING with exactly one named bit set (DER: trailing zero bits dropped).
function namedBit(bit) {
  const nbytes = Math.floor(bit / 8) + 1;
  const bytes = Buffer.alloc(nbytes);
  bytes[nbytes - 1] = 0x80 >> (bit % 8);
  const unused = 7 - (bit % 8);
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([unused]), bytes]));
}

function utf8(s) {
  return tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
}

module.exports = {
  TAG,
  DerError,
  readTlv,
  readSingle,
  children,
  decodeOid,
  checkInteger,
  smallInteger,
  tlv,
  integer,
  namedBit,
  utf8,
};
