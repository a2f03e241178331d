// What the peers of `python -m benchmarks` items 5 and 6 (verify.mjs, verify_type1.mjs)
// share: one header parsed and its token verified, and the timed loop the Python side of
// benchmarks/peer.py (judge_when_told) runs too.
import { AuthorizationHeader } from '@cloudflare/privacypass-ts';

// A function that parses an Authorization header of `tokenType` and checks its token with
// `verify(token)` (awaited), throwing when a token does not verify.
export function verifier(tokenType, verify) {
  return async (header) => {
    const [auth] = AuthorizationHeader.parse(tokenType, header);
    if (!auth || !(await verify(auth.token))) {
      throw new Error('a valid token did not verify');
    }
  };
}

// Warm up on the first `warm` headers (verified again below: verification keeps no state),
// print "ready", wait for a line on stdin (so the sides start together), then verify every
// header one at a time, each awaited; print {"count", "start_ms", "end_ms"}.
export async function verifyWhenTold(headers, verifyOne, warm) {
  for (const header of headers.slice(0, warm)) await verifyOne(header);

  console.log('ready');
  await new Promise((resolve) => process.stdin.once('data', resolve));
  process.stdin.pause();

  const begin = performance.now();
  const beginMs = Date.now();
  for (const header of headers) await verifyOne(header);
  const elapsed = performance.now() - begin;
  console.log(JSON.stringify({ count: headers.length, start_ms: beginMs, end_ms: beginMs + elapsed }));
}
