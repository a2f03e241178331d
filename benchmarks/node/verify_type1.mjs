// The peer of `python -m benchmarks` item 6: origin-side verification of type-1 (VOPRF P-384)
// tokens with @cloudflare/privacypass-ts, one at a time (each awaited before the next).
//
//   node verify_type1.mjs INPUT.json
//
// INPUT.json: {"private_key": <base64url 48-byte issuer scalar>, "headers": [<Authorization>...]}.
// Prints "ready" once warm, waits for a line on stdin (so both sides start alike), then parses
// each header (AuthorizationHeader.parse) and verifies its token with
// privateVerif.Origin.verify(token, privateKey); prints {"count", "start_ms", "end_ms"}.
import { readFileSync } from 'node:fs';
import { AuthorizationHeader, TOKEN_TYPES, privateVerif } from '@cloudflare/privacypass-ts';

const [input] = process.argv.slice(2);
const { private_key: privateKeyText, headers } = JSON.parse(readFileSync(input, 'utf8'));
const privateKey = new Uint8Array(Buffer.from(privateKeyText, 'base64url'));
const origin = new privateVerif.Origin();

async function verifyOne(header) {
  const [auth] = AuthorizationHeader.parse(TOKEN_TYPES.VOPRF, header);
  if (!auth || !(await origin.verify(auth.token, privateKey))) {
    throw new Error('a valid token did not verify');
  }
}

// Warm up on a few tokens (verified again below: verification keeps no state).
for (const header of headers.slice(0, 5)) await verifyOne(header);

console.log('ready');
await new Promise((resolve) => process.stdin.once('data', resolve));
process.stdin.pause();

const begin = performance.now();
const beginMs = Date.now();
for (const header of headers) await verifyOne(header);
const elapsed = performance.now() - begin;
console.log(JSON.stringify({ count: headers.length, start_ms: beginMs, end_ms: beginMs + elapsed }));
