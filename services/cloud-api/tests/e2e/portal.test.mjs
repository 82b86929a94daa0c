// End-to-end test of the cloud-api web portal in a real browser (Debian chromium driven by
// playwright-core), against a real cloud-api on Postgres and a real SMTP sink (aiosmtpd).
//
// Env: BASE (cloud-api URL), MAIL_DIR (where the sink writes mails), SCREENSHOTS (output dir),
// CHROMIUM (browser binary, default /usr/bin/chromium); see lib.mjs.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';

import { BASE, SHOTS, linkIn, run, step, waitMail, withBrowser } from './lib.mjs';

const b64url = (buf) => buf.toString('base64url');
const email = `ada-${Date.now()}@example.com`;
const password = 'first password 123';
const newPassword = 'second password 456';

// The desktop's code exchange at /oidc/token (form-encoded, PKCE verifier).
function exchangeCode(code, verifier) {
  return fetch(`${BASE}/oidc/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code, redirect_uri: 'chatons://cloud/auth/callback',
      client_id: 'chatons-desktop', code_verifier: verifier,
    }),
  });
}

await run('portal', async ({ context, page: first }) => {
  // The page changes below (a fresh tab for the reset link), and the screenshots follow it.
  let page = first;
  const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  step('the root page says what this is and links sign-in, signup, discovery and the API reference');
  let resp = await page.goto(`${BASE}/`);
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-type'], /^text\/html/);
  assert.doesNotMatch(resp.headers()['content-security-policy'], /unsafe-inline/);
  await page.getByRole('heading', { name: 'Chatons Cloud', level: 1 }).waitFor();
  const main = page.locator('main');
  for (const [name, href] of [
    ['Sign in', '/cloud/login'],
    ['Create account', '/cloud/signup'],
    ['API reference', '/docs'],
    ['OpenID Connect discovery', '/.well-known/openid-configuration'],
  ]) {
    assert.equal(await main.getByRole('link', { name, exact: true }).getAttribute('href'), href, name);
  }
  await shot('root');
  const described = await page.request.get(`${BASE}/`, { headers: { accept: 'application/json' } });
  assert.equal(described.status(), 200);
  const about = await described.json();
  assert.equal(about.name, 'Chatons Cloud');
  assert.ok(about.version && about.links.portal && about.links.discovery && about.links.openapi && about.links.docs);

  step('the API reference renders from the vendored bundle, within its CSP');
  const cspErrors = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspErrors.push(m.text()); });
  await main.getByRole('link', { name: 'API reference', exact: true }).click();
  await page.waitForURL(`${BASE}/docs`);
  await page.getByRole('heading', { name: /Chatons Cloud API/ }).first().waitFor({ timeout: 30_000 });
  await page.getByText('/v1/projects').first().waitFor();
  // Redoc's sidebar credit links a logo on the vendor's CDN: the CSP blocks it (nothing is
  // loaded from another origin); anything else blocked would be a broken page.
  const unexpected = cspErrors.filter((m) => !/Loading the image 'https:\/\/cdn\.redoc\.ly\//.test(m));
  assert.deepEqual(unexpected, [], 'no other CSP violations on /docs');
  await page.screenshot({ path: join(SHOTS, 'docs.png') });
  page.removeAllListeners('console');

  step('sign up');
  resp = await page.goto(`${BASE}/cloud/signup`);
  assert.equal(resp.status(), 200);
  const headers = resp.headers();
  assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
  assert.doesNotMatch(headers['content-security-policy'], /unsafe-inline/);
  assert.equal(headers['x-frame-options'], 'DENY');
  await page.getByLabel('Full name').fill('Ada Lovelace');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await shot('signup');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();
  await shot('signup-check-email');

  step('the verification mail arrives at the SMTP sink; open its link');
  const verifyMail = await waitMail(email, 'Confirm your email');
  await page.goto(linkIn(verifyMail, '/cloud/verify-email'));
  await shot('verify-email');
  await page.getByRole('button', { name: 'Confirm my email' }).click();
  await page.getByRole('heading', { name: 'Email confirmed' }).waitFor();

  step('log in');
  await page.goto(`${BASE}/cloud/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await shot('login');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Hello, Ada Lovelace' }).waitFor();
  assert.ok(await page.getByText('Email confirmed').isVisible());
  const cookie = (await context.cookies()).find((c) => c.name === 'chatons_cloud_session');
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Lax', 'portal cookie HttpOnly, SameSite=Lax');
  await shot('account');

  step('create an organization and invite a member');
  await page.goto(`${BASE}/cloud/organizations`);
  await page.getByLabel('New organization name').fill('Analytical Engines');
  await page.getByRole('button', { name: 'Create organization' }).click();
  await page.getByText('Organization created.').waitFor();
  assert.ok(await page.getByRole('heading', { name: 'Analytical Engines' }).isVisible());
  const invitee = `charles-${Date.now()}@example.com`;
  await page.getByLabel('Email', { exact: true }).fill(invitee);
  await page.getByRole('button', { name: 'Send invitation' }).click();
  await page.getByText('Invitation sent.').waitFor();
  await shot('organizations');
  const orgUrl = new URL(page.url());
  const orgId = orgUrl.searchParams.get('org');
  assert.ok(orgId, 'organization id in the URL');

  step('the invitee gets the mail, signs up, signs in and accepts');
  const inviteMail = await waitMail(invitee, 'You are invited to an organization');
  const inviteLink = linkIn(inviteMail, '/cloud/accept-invite');
  const signup = await fetch(`${BASE}/v1/web/signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: invitee, displayName: 'Charles Babbage', password: 'charles password 1' }),
  });
  // With a mailing server every JSON signup answers 202 and no session (a taken address must
  // look like a new one); the invitee signs in with the password just chosen.
  assert.equal(signup.status, 202, await signup.text());
  await withBrowser('guest', async (guest) => {
    const g = guest.pages()[0] ?? (await guest.newPage());
    await g.goto(inviteLink); // not signed in: the login page, which comes back here
    await g.getByLabel('Email').fill(invitee);
    await g.getByLabel('Password').fill('charles password 1');
    await g.getByRole('button', { name: 'Sign in' }).click();
    await g.getByRole('heading', { name: 'Join an organization' }).waitFor();
    await g.screenshot({ path: join(SHOTS, 'accept-invite.png'), fullPage: true });
    await g.getByRole('button', { name: 'Accept the invitation' }).click();
    await g.getByText('You joined the organization.').waitFor();
    assert.ok(await g.getByRole('heading', { name: 'Analytical Engines' }).isVisible());
  });

  step('add a provider');
  await page.goto(`${BASE}/cloud/providers?org=${encodeURIComponent(orgId)}`);
  await page.getByLabel('Kind').selectOption('openai-compatible');
  await page.getByLabel('Label').fill('Local vLLM');
  await page.getByLabel('Base URL').fill('https://llm.example.com/v1');
  await page.getByLabel('API key').fill('sk-secret-never-shown');
  await page.getByLabel('Models (one per line)').fill('llama-3.1-70b\nqwen-2.5-coder');
  await page.getByLabel('Default model').fill('llama-3.1-70b');
  await page.getByRole('button', { name: 'Add provider' }).click();
  await page.getByText('Provider added.').waitFor();
  const html = await page.content();
  assert.ok(html.includes('Local vLLM') && html.includes('llama-3.1-70b'));
  assert.ok(!html.includes('sk-secret-never-shown'), 'the secret is never shown');
  assert.ok(await page.getByRole('cell', { name: 'set', exact: true }).isVisible());
  await shot('providers');
  await page.getByRole('link', { name: 'Edit' }).click();
  await page.getByRole('heading', { name: 'Edit Local vLLM' }).waitFor();
  assert.ok(!(await page.content()).includes('sk-secret-never-shown'));
  await shot('provider-edit');

  step('desktop hand-off page without parameters explains the flow');
  await page.goto(`${BASE}/cloud/desktop`);
  await page.getByRole('heading', { name: 'Connect Chatons desktop' }).waitFor();
  await shot('desktop');

  step('desktop hand-off with PKCE: the browser is sent to chatons://cloud/auth/callback');
  const verifier = b64url(randomBytes(48));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const state = b64url(randomBytes(16));
  let callback = null;
  const onResponse = (r) => {
    const loc = r.headers()['location'];
    if (loc && loc.startsWith('chatons://')) callback = loc;
  };
  const onRequest = (r) => {
    if (r.url().startsWith('chatons://')) callback = callback ?? r.url();
  };
  page.on('response', onResponse);
  page.on('request', onRequest);
  await page
    .goto(`${BASE}/cloud/desktop?state=${state}&code_challenge=${challenge}&code_challenge_method=S256`)
    .catch(() => {}); // the custom scheme cannot load in the browser
  for (let i = 0; i < 50 && !callback; i++) await new Promise((r) => setTimeout(r, 100));
  page.off('response', onResponse);
  page.off('request', onRequest);
  assert.ok(callback, 'redirected to the desktop callback');
  const cb = new URL(callback);
  assert.equal(`${cb.protocol}//${cb.host}${cb.pathname}`, 'chatons://cloud/auth/callback');
  assert.equal(cb.searchParams.get('state'), state);
  const code = cb.searchParams.get('code');
  assert.ok(code, 'code in the callback');

  step('the desktop exchanges the code with its verifier at /oidc/token');
  const tokenResp = await exchangeCode(code, verifier);
  const tokens = await tokenResp.json();
  assert.equal(tokenResp.status, 200, JSON.stringify(tokens));
  assert.ok(tokens.access_token && tokens.id_token, 'tokens issued');
  const claims = JSON.parse(Buffer.from(tokens.id_token.split('.')[1], 'base64url').toString());
  assert.equal(claims.email, email);
  const replay = await exchangeCode(code, verifier);
  assert.equal(replay.status, 400, 'the code works once');

  // The tab that was sent to the custom scheme stays stuck on it; continue in a fresh one.
  const old = page;
  page = await context.newPage();
  await old.close();

  step('sign out, forgot password, reset mail, new password');
  await page.goto(`${BASE}/cloud/account`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to Chatons Cloud' }).waitFor();
  await page.goto(`${BASE}/cloud/forgot-password`);
  await page.getByLabel('Email').fill(email);
  await shot('forgot-password');
  await page.getByRole('button', { name: 'Send the link' }).click();
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();
  const resetMail = await waitMail(email, 'Reset your');
  await page.goto(linkIn(resetMail, '/cloud/reset-password'));
  await page.getByLabel('New password').fill(newPassword);
  await shot('reset-password');
  await page.getByRole('button', { name: 'Set the new password' }).click();
  await page.getByRole('heading', { name: 'Password changed' }).waitFor();
  const desktopAccount = await fetch(`${BASE}/oidc/userinfo`, {
    headers: { authorization: `Bearer ${tokens.access_token}` },
  });
  assert.equal(desktopAccount.status, 401, 'the reset signed the desktop out too');

  step('the old password no longer works, the new one does');
  await page.goto(`${BASE}/cloud/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Invalid email or password.').waitFor();
  await shot('login-error');
  await page.getByLabel('Password').fill(newPassword);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Hello, Ada Lovelace' }).waitFor();

  step('a form POST with a wrong CSRF token is refused');
  const csrfResp = await page.request.post(`${BASE}/cloud/organizations`, {
    form: { name: 'Forged', csrf_token: 'forged' },
  });
  assert.equal(csrfResp.status(), 400);

  step('phone width');
  const p2 = await context.newPage();
  await p2.setViewportSize({ width: 390, height: 844 });
  await p2.goto(`${BASE}/cloud/signup`);
  const overflow = await p2.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  assert.equal(overflow, false, 'no horizontal scrolling at phone width');
  await p2.screenshot({ path: join(SHOTS, 'signup-phone.png'), fullPage: true });
  await p2.close();
});
