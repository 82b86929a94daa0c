// What the browser tests share: the environment, a browser with a fresh profile, mails from
// the SMTP sink, and an account that is signed up, verified and signed in through the pages.
//
// Env: BASE (cloud-api URL), MAIL_DIR (where the sink writes mails), SCREENSHOTS (output dir),
// CHROMIUM (browser binary, default /usr/bin/chromium), ADMIN_EMAIL (the address the server's
// CHATONS_ADMIN_EMAILS names).
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const BASE = process.env.BASE ?? 'http://127.0.0.1:4000';
export const MAIL_DIR = process.env.MAIL_DIR;
export const SHOTS = process.env.SCREENSHOTS;
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const ADMIN_EMAIL = process.env.ADMIN_EMAIL;
assert.ok(MAIL_DIR && SHOTS, 'MAIL_DIR and SCREENSHOTS are required');
mkdirSync(SHOTS, { recursive: true });

export const step = (m) => console.log(`--> ${m}`);

/** Mails already handed out, so two waits for the same subject get two mails. */
const seen = new Set();

/** Waits for a mail to `to` whose subject contains `subject` and returns it. */
export async function waitMail(to, subject) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    for (const f of readdirSync(MAIL_DIR).filter((f) => f.endsWith('.json')).sort()) {
      if (seen.has(f)) continue;
      const m = JSON.parse(readFileSync(join(MAIL_DIR, f), 'utf8'));
      if (m.to.includes(to) && m.subject.includes(subject)) {
        seen.add(f);
        return m;
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no mail "${subject}" to ${to} within 30 s`);
}

/** The first link to `path` (with its `?token=`) in a mail's text. */
export function linkIn(mail, path) {
  const m = mail.text.match(new RegExp(`https?://\\S+${path}\\?token=[A-Za-z0-9_\\-+%.]+`));
  assert.ok(m, `a ${path} link in: ${mail.text}`);
  return m[0];
}

/** Runs `body(context)` in a browser with a fresh profile, closed and removed afterwards. */
export async function withBrowser(name, body) {
  const userDir = mkdtempSync(join(tmpdir(), `chatons-e2e-${name}-`));
  const context = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 820 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
  try {
    return await body(context);
  } finally {
    await context.close();
    rmSync(userDir, { recursive: true, force: true });
  }
}

/**
 * Runs `body({ context, page, shot })` in a fresh browser, printing the pages' HTML when it
 * throws; exits the process with its outcome. `name` labels the log lines.
 */
export async function run(name, body) {
  let failed = false;
  await withBrowser(name, async (context) => {
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const shot = (file) => page.screenshot({ path: join(SHOTS, `${file}.png`), fullPage: true });
      await body({ context, page, shot });
      console.log(`${name} e2e: all steps passed`);
    } catch (e) {
      failed = true;
      console.error(`${name} e2e FAILED:`, e);
      for (const p of context.pages()) {
        console.error(`page ${p.url()}:\n`, (await p.content().catch(() => '')).slice(0, 3000));
      }
    }
  });
  process.exit(failed ? 1 : 0);
}

/** Signs up `email` on the signup page, follows the mailed link, and signs in. */
export async function signUpAndSignIn(page, { email, password, name = 'Grace Hopper' }) {
  await page.goto(`${BASE}/cloud/signup`);
  await page.getByLabel('Full name').fill(name);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();
  const mail = await waitMail(email, 'Confirm your email');
  await page.goto(linkIn(mail, '/cloud/verify-email'));
  await page.getByRole('button', { name: 'Confirm my email' }).click();
  await page.getByRole('heading', { name: 'Email confirmed' }).waitFor();
  await signIn(page, { email, password });
  await page.getByRole('heading', { name: `Hello, ${name}` }).waitFor();
}

/** Fills the portal's sign-in form (the page it lands on is the caller's to check). */
export async function signIn(page, { email, password }) {
  await page.goto(`${BASE}/cloud/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Signs the browser out (the account page's sign-out button). */
export async function signOut(page) {
  await page.goto(`${BASE}/cloud/account`);
  await page.getByRole('button', { name: 'Sign out' }).click();
}
