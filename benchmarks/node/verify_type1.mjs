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
import { TOKEN_TYPES, privateVerif } from '@cloudflare/privacypass-ts';
import { verifier, verifyWhenTold } from './timed.mjs';

const [input] = process.argv.slice(2);
const { private_key: privateKeyText, headers } = JSON.parse(readFileSync(input, 'utf8'));
const privateKey = new Uint8Array(Buffer.from(privateKeyText, 'base64url'));
const origin = new privateVerif.Origin();

const verifyOne = verifier(TOKEN_TYPES.VOPRF, (token) => origin.verify(token, privateKey));
await verifyWhenTold(headers, verifyOne, 5);
