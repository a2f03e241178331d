// The peer of `python -m benchmarks` item 5: origin-side verification of type-2 tokens with
// @cloudflare/privacypass-ts, one at a time (each awaited before the next).
//
//   node verify.mjs INPUT.json
//
// INPUT.json: {"token_key": <base64url RSASSA-PSS SPKI>, "headers": [<Authorization value>...]}.
// Prints "ready" once warm, waits for a line on stdin (so parallel processes start together),
// then parses each header and verifies its token; prints {"count", "start_ms", "end_ms"}.
import { readFileSync } from 'node:fs';
import { AuthorizationHeader, TOKEN_TYPES, publicVerif, util } from '@cloudflare/privacypass-ts';

const [input] = process.argv.slice(2);
const { token_key: tokenKey, headers } = JSON.parse(readFileSync(input, 'utf8'));

const spki = Buffer.from(tokenKey, 'base64url');
const key = await crypto.subtle.importKey(
  'spki',
  util.convertRSASSAPSSToEnc(new Uint8Array(spki)),
  { name: 'RSA-PSS', hash: 'SHA-384' },
  true,
  ['verify'],
);
const origin = new publicVerif.Origin(publicVerif.BlindRSAMode.PSS);

async function verifyOne(header) {
  const [auth] = AuthorizationHeader.parse(TOKEN_TYPES.BLIND_RSA, header);
  if (!auth || !(await origin.verify(auth.token, key))) {
    throw new Error('a valid token did not verify');
  }
}

// Warm up on a few tokens (they are verified again below: verification keeps no state).
for (const header of headers.slice(0, 20)) await verifyOne(header);

console.log('ready');
await new Promise((resolve) => process.stdin.once('data', resolve));
process.stdin.pause();

const begin = performance.now();
const beginMs = Date.now();
for (const header of headers) await verifyOne(header);
const elapsed = performance.now() - begin;
console.log(JSON.stringify({ count: headers.length, start_ms: beginMs, end_ms: beginMs + elapsed }));
