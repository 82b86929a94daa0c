// The admin area in a real browser: the admin (ADMIN_EMAIL, an admin once verified) signs up
// and confirms the address, searches a user, grants them a plan, verifies and disables them,
// edits a plan, lists organizations and reads every action back in the audit log; a disabled
// user can no longer sign in. Screenshots: admin-users, admin-user, admin-plans,
// admin-organizations, admin-audit.
import assert from 'node:assert/strict';
import { ADMIN_EMAIL, BASE, run, signUpAndSignIn, step } from './lib.mjs';

assert.ok(ADMIN_EMAIL, 'ADMIN_EMAIL is required');
const stamp = Date.now();
const target = { email: `zelda-${stamp}@example.com`, password: 'target password 123', name: 'Zelda Target' };
const adminPassword = 'admin password 123';

/** A JSON request to the API (the target signs up and in without the browser). */
async function api(path, body) {
  const r = await fetch(`${BASE}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

/** A link of the admin area's own navigation (the site's header has an Organizations link too). */
const adminNav = (page, name) =>
  page.getByRole('navigation', { name: 'Admin area' }).getByRole('link', { name });

const login = () => api('/v1/web/login', { email: target.email, password: target.password });

await run('admin', async ({ page, shot }) => {
  step('a user to administer signs up (JSON API) and can sign in');
  const signup = await api('/v1/web/signup', {
    email: target.email, displayName: target.name, password: target.password,
  });
  assert.ok([201, 202].includes(signup.status), `signup: ${signup.status}`);
  assert.equal((await login()).status, 200, 'the target signs in before being disabled');

  step('the admin signs up, confirms the address and opens the admin area');
  await signUpAndSignIn(page, { email: ADMIN_EMAIL, password: adminPassword, name: 'Ada Admin' });
  await page.getByRole('link', { name: /^Admin area/ }).click();
  await page.getByRole('heading', { name: 'Admin · Users' }).waitFor();

  step('search the user');
  await page.getByRole('searchbox', { name: 'Search users' }).fill(`zelda-${stamp}`);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/\/cloud\/admin\/users\?q=/);
  const rows = page.locator('tbody tr');
  assert.equal(await rows.count(), 1, 'the search finds exactly the user');
  await shot('admin-users');
  await page.getByRole('link', { name: target.email }).click();
  await page.getByRole('heading', { name: target.name }).waitFor();

  step('grant a complimentary plan, verify the email, disable the user');
  await page.getByLabel('Grant a complimentary plan').selectOption('pro');
  await page.getByLabel('Duration in days').fill('30');
  await page.getByRole('button', { name: 'Grant plan' }).click();
  await page.getByRole('status').filter({ hasText: 'Complimentary plan granted.' }).waitFor();
  const verify = page.getByRole('button', { name: 'Mark email verified' });
  if (await verify.count()) {
    await verify.click();
    await page.getByRole('status').filter({ hasText: 'Email marked as verified.' }).waitFor();
  }
  await page.getByRole('button', { name: 'Disable user' }).click();
  await page.getByRole('status').filter({ hasText: 'User disabled' }).waitFor();
  await page.getByText(/Disabled since/).waitFor();
  await page.getByRole('button', { name: 'Enable user' }).waitFor();
  await shot('admin-user');
  const refused = await login();
  assert.equal(refused.status, 401, `a disabled user cannot sign in: ${JSON.stringify(refused.body)}`);

  step('edit a plan');
  await adminNav(page, 'Plans').click();
  await page.getByRole('heading', { name: 'Admin · Plans' }).waitFor();
  await page.locator('#label_max').fill('Max (edited)');
  await page.locator('#limit_max').fill('31');
  await page.getByRole('button', { name: 'Save max' }).click();
  await page.getByRole('status').filter({ hasText: 'Plan saved.' }).waitFor();
  assert.equal(await page.locator('#label_max').inputValue(), 'Max (edited)');
  assert.equal(await page.locator('#limit_max').inputValue(), '31');
  await shot('admin-plans');

  step('list and search organizations');
  await adminNav(page, 'Organizations').click();
  await page.getByRole('heading', { name: 'Admin · Organizations' }).waitFor();
  await page.getByRole('searchbox', { name: 'Search organizations' }).fill('Zelda');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('cell', { name: /Zelda Target's organization/ }).waitFor();
  await shot('admin-organizations');

  step('the audit log shows every action: who, what, when, on which target');
  await adminNav(page, 'Audit log').click();
  await page.getByRole('heading', { name: 'Admin · Audit log' }).waitFor();
  const log = await page.locator('tbody').innerText();
  for (const action of ['user.grant', 'user.disable', 'plan.update']) {
    assert.ok(log.includes(action), `${action} in the audit log:\n${log}`);
  }
  assert.ok(log.includes(ADMIN_EMAIL), 'the actor is named');
  assert.ok(log.includes(target.email), 'the target is named');
  await shot('admin-audit');

  step('enable the user again and put the plan back');
  await page.goto(`${BASE}/cloud/admin/users?q=${encodeURIComponent(target.email)}`);
  await page.getByRole('link', { name: target.email }).click();
  await page.getByRole('button', { name: 'Enable user' }).click();
  await page.getByRole('status').filter({ hasText: 'User enabled.' }).waitFor();
  assert.equal((await login()).status, 200, 'enabled again, the user signs in');
  await page.goto(`${BASE}/cloud/admin/plans`);
  await page.locator('#label_max').fill('Max');
  await page.locator('#limit_max').fill('30');
  await page.getByRole('button', { name: 'Save max' }).click();
  await page.getByRole('status').filter({ hasText: 'Plan saved.' }).waitFor();
});
