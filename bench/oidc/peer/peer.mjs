// Peer for bench/oidc: node `oidc-provider` 9, minimal configuration, default in-memory adapter.
//
//   PORT=18080 node peer.mjs
//
// One public client (`token_endpoint_auth_method: 'none'`, PKCE S256 required — the provider's
// default for public clients), redirect `http://127.0.0.1:9/cb`, grants authorization_code +
// refresh_token, `rotateRefreshToken: true`, scopes `openid offline_access`. The ID token is signed
// with a P-256 key made at start (ES256, the same algorithm as cloud-api's default key).
//
// The benchmark needs many grants without a browser, so the peer mints them itself through the
// provider's own model classes (Grant, AuthorizationCode, RefreshToken) — exactly the objects its
// authorization endpoint would save after login + consent — on a bench-only route that answers
// loopback callers only:
//
//   POST /__bench/mint?kind=refresh&n=200  -> {"refresh_tokens": ["…", …]}
//   POST /__bench/mint?kind=code&n=200     -> {"codes": [{"code": "…", "verifier": "…"}, …]}
//
// Nothing here touches the token endpoint: the loadgen drives POST /token exactly as a client would.
// Prints one line `READY <issuer>` on stdout when listening.

import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const PORT = Number(process.env.PORT || 18080);
const HOST = '127.0.0.1';
const ISSUER = `http://${HOST}:${PORT}`;
const CLIENT_ID = process.env.CLIENT_ID || 'bench-public';
const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const SCOPE = 'openid offline_access';
const MAX_MINT = 1000;

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'bench-es256' };

const configuration = {
  clients: [
    {
      client_id: CLIENT_ID,
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'offline_access'],
  claims: { openid: ['sub'] },
  // PKCE is required for public clients by default; state it anyway.
  pkce: { required: () => true },
  rotateRefreshToken: true,
  // offline_access is only honoured with prompt=consent (the interactive path; minting below
  // records the same consent in the Grant directly).
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
};

const provider = new Provider(ISSUER, configuration);

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

async function newGrant(client, accountId) {
  const grant = new provider.Grant({ accountId, clientId: client.clientId });
  grant.addOIDCScope(SCOPE);
  return grant.save();
}

async function mintRefresh(client, i) {
  const accountId = `bench-user-${i % 16}`;
  const grantId = await newGrant(client, accountId);
  const rt = new provider.RefreshToken({
    accountId,
    authTime: Math.floor(Date.now() / 1000),
    client,
    grantId,
    gty: 'authorization_code',
    rotations: 0,
    scope: SCOPE,
  });
  return rt.save();
}

async function mintCode(client, i) {
  const accountId = `bench-user-${i % 16}`;
  const grantId = await newGrant(client, accountId);
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const code = new provider.AuthorizationCode({
    accountId,
    authTime: Math.floor(Date.now() / 1000),
    client,
    grantId,
    redirectUri: REDIRECT_URI,
    scope: SCOPE,
    codeChallenge: challenge,
    codeChallengeMethod: 'S256',
  });
  return { code: await code.save(), verifier };
}

provider.use(async (ctx, next) => {
  if (ctx.path !== '/__bench/mint') return next();
  const remote = ctx.req.socket.remoteAddress || '';
  if (ctx.method !== 'POST' || !(remote === '127.0.0.1' || remote === '::1' || remote === '::ffff:127.0.0.1')) {
    ctx.status = 404;
    return undefined;
  }
  const n = Number(ctx.query.n || 1);
  if (!Number.isInteger(n) || n < 1 || n > MAX_MINT) {
    ctx.status = 400;
    ctx.body = { error: `n must be 1..${MAX_MINT}` };
    return undefined;
  }
  const client = await provider.Client.find(CLIENT_ID);
  if (ctx.query.kind === 'refresh') {
    const refresh_tokens = [];
    for (let i = 0; i < n; i += 1) refresh_tokens.push(await mintRefresh(client, i));
    ctx.body = { refresh_tokens };
  } else if (ctx.query.kind === 'code') {
    const codes = [];
    for (let i = 0; i < n; i += 1) codes.push(await mintCode(client, i));
    ctx.body = { codes };
  } else {
    ctx.status = 400;
    ctx.body = { error: 'kind must be refresh or code' };
  }
  return undefined;
});

const server = provider.listen(PORT, HOST, () => {
  process.stdout.write(`READY ${ISSUER}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
