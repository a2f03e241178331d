// Token type 1 (VOPRF P-384) with @cloudflare/privacypass-ts, against pat-middleware: an
// implementation we did not write, driven only through its public API.
//
//   node type1_interop.mjs client ORIGIN_URL ISSUER_REQUEST_URL
//       privacypass-ts as the client: GET ORIGIN_URL, parse its PrivateToken challenge with
//       WWWAuthenticateHeader.parse, send the TokenRequest to our issuer over HTTP, finalize
//       the answer (which verifies our DLEQ proof against the challenge's token-key), redeem
//       the token at ORIGIN_URL, then replay it. Prints one JSON line.
//   node type1_interop.mjs keygen
//       privacypass-ts's keyGen: {"private_key", "public_key"} (base64url).
//   node type1_interop.mjs issue  < {"private_key", "public_key", "issuer_name", "challenges"}
//       privacypass-ts's Issuer and Client mint one token per challenge (base64url
//       TokenChallenge); prints {"tokens": [...], "authorizations": [...]}.
//   node type1_interop.mjs verify < {"private_key", "tokens"}
//       privacypass-ts's Origin.verify on each token; prints {"valid": [true, ...]}.
import { readFileSync } from 'node:fs';
import {
  AuthorizationHeader,
  TOKEN_TYPES,
  Token,
  TokenChallenge,
  WWWAuthenticateHeader,
  privateVerif,
} from '@cloudflare/privacypass-ts';

const b64 = (bytes) => Buffer.from(bytes).toString('base64url');
const unb64 = (text) => new Uint8Array(Buffer.from(text, 'base64url'));
const stdinJson = () => JSON.parse(readFileSync(0, 'utf8'));

function cookiesOf(response) {
  return response.headers
    .getSetCookie()
    .map((line) => line.split(';', 1)[0])
    .join('; ');
}

async function client(originUrl, requestUrl) {
  const first = await fetch(originUrl);
  const cookie = cookiesOf(first);
  const challenges = WWWAuthenticateHeader.parse(first.headers.get('www-authenticate'));
  const chosen = challenges.find((c) => c.challenge.tokenType === TOKEN_TYPES.VOPRF.value);
  if (!chosen) throw new Error('no type-1 challenge');
  const tokenClient = new privateVerif.Client();
  const request = await tokenClient.createTokenRequest(chosen.challenge, chosen.tokenKey);
  const issued = await fetch(requestUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/private-token-request',
      accept: 'application/private-token-response',
    },
    body: request.serialize(),
  });
  if (issued.status !== 200) throw new Error(`issuer answered ${issued.status}`);
  const response = tokenClient.deserializeTokenResponse(new Uint8Array(await issued.arrayBuffer()));
  const token = await tokenClient.finalize(response); // throws unless our proof verifies
  const authorization = new AuthorizationHeader(token).toString();
  const redeemed = await fetch(originUrl, { headers: { authorization, cookie } });
  const replayed = await fetch(originUrl, { headers: { authorization, cookie } });
  console.log(
    JSON.stringify({
      first_status: first.status,
      token_key: b64(chosen.tokenKey),
      token_request: b64(request.serialize()),
      token: b64(token.serialize()),
      status: redeemed.status,
      body: await redeemed.text(),
      replay_status: replayed.status,
    }),
  );
}

async function keygen() {
  const { privateKey, publicKey } = await privateVerif.keyGen();
  console.log(JSON.stringify({ private_key: b64(privateKey), public_key: b64(publicKey) }));
}

async function issue() {
  const input = stdinJson();
  const privateKey = unb64(input.private_key);
  const publicKey = unb64(input.public_key);
  const issuer = new privateVerif.Issuer(input.issuer_name, privateKey, publicKey);
  const tokens = [];
  const authorizations = [];
  for (const text of input.challenges) {
    const tokenClient = new privateVerif.Client();
    const request = await tokenClient.createTokenRequest(TokenChallenge.deserialize(unb64(text)), publicKey);
    const token = await tokenClient.finalize(await issuer.issue(request));
    tokens.push(b64(token.serialize()));
    authorizations.push(new AuthorizationHeader(token).toString());
  }
  console.log(JSON.stringify({ tokens, authorizations }));
}

async function verify() {
  const input = stdinJson();
  const origin = new privateVerif.Origin();
  const privateKey = unb64(input.private_key);
  const valid = [];
  for (const text of input.tokens) {
    valid.push(await origin.verify(Token.deserialize(TOKEN_TYPES.VOPRF, unb64(text)), privateKey));
  }
  console.log(JSON.stringify({ valid }));
}

const [mode, ...rest] = process.argv.slice(2);
const modes = { client: () => client(...rest), keygen, issue, verify };
if (!modes[mode]) {
  console.error('usage: node type1_interop.mjs client|keygen|issue|verify ...');
  process.exit(2);
}
await modes[mode]();
