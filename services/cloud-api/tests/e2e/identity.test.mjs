// Identity in a real browser: two-step sign-in (TOTP enrolment from the QR page, sign-in with a
// code), passkeys with Chromium's virtual authenticator (DevTools protocol, through
// playwright-core: register, sign in without a password, remove, refused afterwards), and the
// device login page approving a code started by a command-line client.
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';

import { BASE, run, signIn, signOut, signUpAndSignIn, step } from './lib.mjs';

/** RFC 6238 (SHA-1, 6 digits, 30 s) from a base32 secret, `offset` steps from now. */
function totp(secret, offset = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/\s/g, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + offset));
  const h = createHmac('sha1', key).update(counter).digest();
  const o = h[h.length - 1] & 0x0f;
  return String(((h.readUInt32BE(o) & 0x7fffffff) % 1_000_000)).padStart(6, '0');
}

await run('identity', async ({ context, page, shot }) => {
  const email = `grace-${Date.now()}@example.com`;
  const password = 'identity password 123';

  step('sign up, confirm, sign in');
  await signUpAndSignIn(page, { email, password });

  step('enrol TOTP from the security page: QR code, key, first code, recovery codes');
  await page.getByRole('link', { name: /Security: two-step sign-in and passkeys/ }).click();
  await page.getByRole('heading', { name: 'Security', level: 1 }).waitFor();
  await page.getByRole('button', { name: 'Set up two-step sign-in' }).click();
  const qr = page.getByRole('img', { name: 'QR code of the authenticator key' });
  await qr.waitFor();
  assert.match(await qr.getAttribute('src'), /^data:image\/svg\+xml;base64,/);
  const secret = (await page.locator('#totp-secret').textContent()).trim();
  await shot('security-totp-setup');
  await page.getByLabel('Code from the app').fill(totp(secret));
  await page.getByRole('button', { name: 'Turn on two-step sign-in' }).click();
  await page.getByText('They are shown only now.').waitFor();
  const codes = await page.getByRole('list', { name: 'Recovery codes' }).locator('code').allTextContents();
  assert.equal(codes.length, 10);
  await shot('security-recovery-codes');
  await page.getByRole('link', { name: 'I saved them' }).click();
  await page.getByText('10 recovery codes left.').waitFor();

  step('sign out; signing in now asks for a code after the password');
  await signOut(page);
  await signIn(page, { email, password });
  await page.getByRole('heading', { name: 'Enter your code' }).waitFor();
  await shot('login-two-factor');
  await page.getByLabel('Code').fill('000000');
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByText('Wrong or already used code.').waitFor();
  // The enrolment spent the current step; the next one is within the window.
  await page.getByLabel('Code').fill(totp(secret, 1));
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('heading', { name: 'Hello, Grace Hopper' }).waitFor();

  step('register a passkey with the virtual authenticator');
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    },
  });
  await page.goto(`${BASE}/cloud/account/security`);
  await page.getByLabel('Name of the new passkey').fill('Test laptop');
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  await page.getByText('Passkey added.').waitFor();
  assert.ok(await page.getByRole('cell', { name: 'Test laptop', exact: true }).isVisible());
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  assert.equal(credentials.length, 1);
  assert.equal(credentials[0].isResidentCredential, true, 'a discoverable credential');
  await shot('security');

  step('sign out; sign in with the passkey, no email, no password, no code');
  await signOut(page);
  await page.goto(`${BASE}/cloud/login`);
  await shot('login-passkey');
  await page.getByRole('button', { name: 'Use a passkey instead' }).click();
  await page.getByRole('heading', { name: 'Hello, Grace Hopper' }).waitFor();
  const after = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  assert.ok(after.credentials[0].signCount >= 1, 'the authenticator signed');

  step('the desktop\'s authorization page offers the passkey too: its code says so in amr');
  await signOut(page);
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const loopback = 'http://127.0.0.1:9/callback';
  const authorize = new URL(`${BASE}/oidc/authorize`);
  for (const [k, v] of Object.entries({
    response_type: 'code', client_id: 'chatons-desktop', redirect_uri: loopback,
    scope: 'openid profile email offline_access', state: 'st-passkey',
    code_challenge: challenge, code_challenge_method: 'S256',
  })) authorize.searchParams.set(k, v);
  await page.goto(authorize.href);
  const callback = page.waitForRequest((r) => r.url().startsWith(loopback));
  await page.getByRole('button', { name: 'Use a passkey instead' }).click();
  const code = new URL((await callback).url()).searchParams.get('code');
  assert.ok(code, 'a code on the loopback redirect');
  const exchanged = await fetch(`${BASE}/oidc/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code, redirect_uri: loopback,
      client_id: 'chatons-desktop', code_verifier: verifier,
    }),
  }).then((r) => r.json());
  const desktopClaims = JSON.parse(Buffer.from(exchanged.id_token.split('.')[1], 'base64url'));
  assert.deepEqual(desktopClaims.amr, ['pop', 'mfa']);
  await page.goto(`${BASE}/cloud/account`);
  await page.getByRole('heading', { name: 'Hello, Grace Hopper' }).waitFor();

  step('device login: a command-line client starts one, the signed-in browser approves it');
  const started = await fetch(`${BASE}/oidc/device/authorize`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: 'chatons-cli', scope: 'openid offline_access' }),
  }).then((r) => r.json());
  await page.goto(started.verification_uri);
  await page.getByLabel('Code').fill(started.user_code.toLowerCase());
  await shot('device-code');
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('heading', { name: 'Sign in Chatons command line?' }).waitFor();
  await shot('device-confirm');
  await page.getByRole('button', { name: 'Approve' }).click();
  await page.getByRole('heading', { name: 'Device connected' }).waitFor();
  await new Promise((r) => setTimeout(r, started.interval * 1000));
  const tokens = await fetch(`${BASE}/oidc/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
      client_id: 'chatons-cli', device_code: started.device_code,
    }),
  });
  assert.equal(tokens.status, 200, await tokens.clone().text());
  const body = await tokens.json();
  const claims = JSON.parse(Buffer.from(body.id_token.split('.')[1], 'base64url'));
  assert.deepEqual(claims.amr, ['pop', 'mfa'], 'approved from a passkey session');

  step('remove the passkey: it no longer signs in');
  await page.goto(`${BASE}/cloud/account/security`);
  await page.getByRole('button', { name: 'Remove Test laptop' }).click();
  await page.getByText('Passkey removed.').waitFor();
  await signOut(page);
  await page.goto(`${BASE}/cloud/login`);
  await page.getByRole('button', { name: 'Use a passkey instead' }).click();
  await page.getByText('this passkey is not registered here').waitFor();
  assert.equal(new URL(page.url()).pathname, '/cloud/login', 'still on the login page');
});
