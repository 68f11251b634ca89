'use strict';

// DER -> PEM with 64-column base64 lines and "\n" line ends (the layout Go's
// encoding/pem and Python's cryptography produce).
function toPem(label, der) {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

module.exports = { toPem };
