// The peer of `python -m benchmarks` item 5: origin-side verification of type-2 tokens with
// @cloudflare/privacypass-ts, one at a time (each awaited before the next).
//
//   node verify.mjs INPUT.json
//
// INPUT.json: {"token_key": <base64url RSASSA-PSS SPKI>, "headers": [<Authorization value>...]}.
// Prints "ready" once warm, waits for a line on stdin (so parallel processes start together),
// then parses each header and verifies its token; prints {"count", "start_ms", "end_ms"}.
import { readFileSync } from 'node:fs';
import { TOKEN_TYPES, publicVerif, util } from '@cloudflare/privacypass-ts';
import { verifier, verifyWhenTold } from './timed.mjs';

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

const verifyOne = verifier(TOKEN_TYPES.BLIND_RSA, (token) => origin.verify(token, key));
await verifyWhenTold(headers, verifyOne, 20);
