// Account self-service in a real browser: change the password (a desktop session ends, this
// browser stays signed in), the sessions page (sign a desktop session out), change the email
// through the link mailed to the new address, delete the account. Screenshots:
// account-password.png, account-sessions.png, account-email.png, account-delete.png.
import assert from 'node:assert/strict';
import { BASE, linkIn, run, signUpAndSignIn, step, waitMail } from './lib.mjs';

const stamp = Date.now();
const email = `katherine-${stamp}@example.com`;
const newEmail = `katherine-moved-${stamp}@example.com`;
const password = 'orbital mechanics 1962';
const newPassword = 'friendship seven 1962';
const name = 'Katherine Johnson';

/** A desktop-client session from the JSON login: its access token. */
async function desktopLogin(address, pass) {
  const r = await fetch(`${BASE}/v1/web/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: address, password: pass }),
  });
  assert.equal(r.status, 200, `desktop login: ${await r.clone().text()}`);
  return (await r.json()).session.accessToken;
}

/** The status of GET /v1/account with `token`. */
async function accountStatus(token) {
  const r = await fetch(`${BASE}/v1/account`, { headers: { authorization: `Bearer ${token}` } });
  return r.status;
}

await run('account', async ({ page, shot }) => {
  step('sign up, confirm the address and sign in');
  await signUpAndSignIn(page, { email, password, name });

  step('the account page links the settings');
  await page.getByRole('link', { name: 'Change password' }).click();
  await page.getByRole('heading', { name: 'Change your password' }).waitFor();

  step('a wrong current password is refused on the page');
  const desktop = await desktopLogin(email, password);
  await page.getByLabel('Current password').fill('not my password');
  await page.getByLabel('New password').fill(newPassword);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByText('The current password is not correct.').waitFor();
  assert.equal(await accountStatus(desktop), 200, 'a refused change ends nothing');

  step('change the password: the desktop session ends, this browser stays signed in');
  await page.getByLabel('Current password').fill(password);
  await page.getByLabel('New password').fill(newPassword);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByText('Your password was changed. Every other device was signed out.').waitFor();
  await shot('account-password');
  assert.equal(await accountStatus(desktop), 401, 'the other session was revoked');
  await page.goto(`${BASE}/cloud/account`);
  await page.getByRole('heading', { name: `Hello, ${name}` }).waitFor();

  step('the sessions page lists this browser and a desktop session; sign the desktop out');
  const desktop2 = await desktopLogin(email, newPassword);
  await page.getByRole('link', { name: 'Sessions and connected apps' }).click();
  await page.getByRole('heading', { name: 'Where you are signed in' }).waitFor();
  await page.getByText('This browser').waitFor();
  const desktopRow = page.getByRole('row').filter({ hasText: 'Chatons desktop' });
  assert.equal(await desktopRow.count(), 1);
  await shot('account-sessions');
  await desktopRow.getByRole('button', { name: /^Sign out Chatons desktop/ }).click();
  await page.getByText('That session was signed out.').waitFor();
  assert.equal(await page.getByRole('row').filter({ hasText: 'Chatons desktop' }).count(), 0);
  assert.equal(await accountStatus(desktop2), 401, 'the revoked session no longer works');
  await page.getByText('This browser').waitFor();

  step('change the email: the link goes to the new address');
  await page.getByRole('link', { name: 'Email', exact: true }).click();
  await page.getByRole('heading', { name: 'Change your email' }).waitFor();
  await page.getByLabel('New email').fill(newEmail);
  await page.getByLabel('Current password').fill(newPassword);
  await page.getByRole('button', { name: 'Send the confirmation link' }).click();
  await page.getByText('a confirmation link is on its way').waitFor();
  await shot('account-email');
  const mail = await waitMail(newEmail, 'Confirm your new email');
  await page.goto(linkIn(mail, '/cloud/account/confirm-email'));
  await page.getByRole('button', { name: 'Use this address' }).click();
  await page.getByRole('heading', { name: 'Email changed' }).waitFor();
  await waitMail(email, 'Your Chatons Cloud email was changed');
  await page.goto(`${BASE}/cloud/account`);
  await page.getByText(newEmail).first().waitFor();
  const oldLogin = await fetch(`${BASE}/v1/web/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: newPassword }),
  });
  assert.equal(oldLogin.status, 401, 'the old address no longer signs in');

  step('delete the account: confirmation page, then signed out');
  await page.getByRole('link', { name: 'Delete account' }).click();
  await page.getByRole('heading', { name: 'Delete your account' }).waitFor();
  await page.getByLabel('Type your email').fill(newEmail);
  await page.getByLabel('Current password').fill(newPassword);
  await shot('account-delete');
  await page.getByRole('button', { name: 'Delete my account' }).click();
  await page.getByRole('heading', { name: 'Account deleted' }).waitFor();
  await page.goto(`${BASE}/cloud/account`);
  await page.getByRole('heading', { name: 'Sign in to Chatons Cloud' }).waitFor();
  const gone = await fetch(`${BASE}/v1/web/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: newEmail, password: newPassword }),
  });
  assert.equal(gone.status, 401, 'the deleted account no longer signs in');
});
