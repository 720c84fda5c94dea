// End-to-end tests of the account pages in a real (headless) Chromium.
// Each test starts its own portcullis and its own browser, and stops both at the end.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  STRONG_PASSWORD,
  launchBrowser,
  screenshot,
  signIn,
  startPortcullis,
  uniqueEmail,
} from './harness.mjs';

const TEST_TIMEOUT_MS = 120_000;
const ACTION_TIMEOUT_MS = 15_000;

/**
 * Runs `body({server, browser, newPage})` with a fresh server and browser; on failure,
 * saves a screenshot of every open page and prints the server's log, then re-throws.
 */
async function withApp(t, body) {
  const server = await startPortcullis();
  let browser;
  const pages = [];
  try {
    browser = await launchBrowser();
    const newPage = async () => {
      const context = await browser.newContext();
      context.setDefaultTimeout(ACTION_TIMEOUT_MS);
      const page = await context.newPage();
      pages.push(page);
      return page;
    };
    await body({ server, browser, newPage });
  } catch (err) {
    for (const [i, page] of pages.entries()) {
      const file = await screenshot(page, `${t.name}-${i}`);
      if (file) t.diagnostic(`screenshot of page ${i} (${page.url()}): ${file}`);
    }
    const logs = server.logs().trim();
    if (logs) t.diagnostic(`server log:\n${logs.slice(-4000)}`);
    throw err;
  } finally {
    if (browser) await browser.close().catch(() => {});
    await server.stop();
  }
}

const pathOf = (page) => new URL(page.url()).pathname;

test('register, sign in, see the account, sign out', { timeout: TEST_TIMEOUT_MS }, (t) =>
  withApp(t, async ({ server, newPage }) => {
    const { baseUrl } = server;
    const email = uniqueEmail('alice');
    const page = await newPage();

    // Register.
    await page.goto(`${baseUrl}/register`);
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Password', { exact: true }).fill(STRONG_PASSWORD);
    await page.getByLabel('Display name').fill('Alice Liddell');
    await page.getByRole('button', { name: 'Create account' }).click();

    await page.waitForURL((u) => u.pathname === '/login');
    assert.equal(new URL(page.url()).searchParams.get('registered'), '1');
    const notice = page.getByRole('status');
    await notice.waitFor();
    assert.match(await notice.innerText(), /confirm your address, then sign in/);

    // Not confirmed yet: signing in explains what to do.
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Password', { exact: true }).fill(STRONG_PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /Confirm your email address/);

    // Open the emailed link and confirm.
    const link = await server.mailLink(email, '/verify-email?token=');
    await page.goto(link);
    await page.getByRole('button', { name: 'Confirm email' }).click();
    await page.waitForURL((u) => u.pathname === '/login' && u.searchParams.get('verified') === '1');

    // Sign in.
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Password', { exact: true }).fill(STRONG_PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL((u) => u.pathname === '/account');
    const shownEmail = page.locator('#account-email');
    await shownEmail.waitFor();
    assert.equal((await shownEmail.innerText()).trim(), email);

    // Sign out.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((u) => u.pathname === '/login');

    // The account page is no longer reachable.
    await page.goto(`${baseUrl}/account`);
    assert.equal(pathOf(page), '/login', `expected a redirect to /login, got ${page.url()}`);
    assert.equal(await page.locator('#account-email').count(), 0);
  }),
);

test('two sessions: "Sign out everywhere else" ends the other one', { timeout: TEST_TIMEOUT_MS }, (t) =>
  withApp(t, async ({ server, newPage }) => {
    const { baseUrl } = server;
    const email = uniqueEmail('bob');
    await server.createUser({ email, name: 'Bob', password: STRONG_PASSWORD });

    // Two separate browser contexts = two devices, same account.
    const a = await newPage();
    const b = await newPage();
    await signIn(a, baseUrl, email);
    await signIn(b, baseUrl, email);

    // A sees both sessions.
    await a.goto(`${baseUrl}/account/sessions`);
    const rows = a.locator('table.sessions tbody tr');
    await rows.first().waitFor();
    assert.equal(await rows.count(), 2, 'expected two signed-in sessions');
    assert.equal(await a.locator('table.sessions tbody tr.current').count(), 1);
    assert.equal(await a.getByRole('button', { name: 'Revoke' }).count(), 1);

    // A signs out everywhere else, after a confirmation step that changes nothing yet.
    await a.getByRole('button', { name: 'Sign out everywhere else' }).click();
    await a.getByRole('heading', { name: 'Sign out everywhere else?' }).waitFor();
    await b.goto(`${baseUrl}/account`);
    assert.equal(pathOf(b), '/account', 'B is still signed in before the confirmation');
    await a.getByRole('button', { name: 'Yes, sign out everywhere else' }).click();
    await a.waitForURL((u) => u.pathname === '/account/sessions');
    await a.waitForLoadState('load');
    await rows.first().waitFor();
    assert.equal(await rows.count(), 1, 'expected only the current session to remain');
    assert.equal(await a.locator('table.sessions tbody tr.current').count(), 1);

    // B has been signed out.
    await b.goto(`${baseUrl}/account`);
    assert.equal(pathOf(b), '/login', `expected B to be redirected to /login, got ${b.url()}`);

    // A is still signed in.
    await a.goto(`${baseUrl}/account`);
    assert.equal(pathOf(a), '/account');
    assert.equal((await a.locator('#account-email').innerText()).trim(), email);
  }),
);

test('a wrong password is refused with 401 and an error message', { timeout: TEST_TIMEOUT_MS }, (t) =>
  withApp(t, async ({ server, newPage }) => {
    const { baseUrl } = server;
    const email = uniqueEmail('carol');
    await server.createUser({ email, name: 'Carol', password: STRONG_PASSWORD });

    const page = await newPage();
    await page.goto(`${baseUrl}/login`);
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Password', { exact: true }).fill('not the right password 99');

    const posted = page.waitForResponse(
      (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/login',
    );
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    const response = await posted;
    assert.equal(response.status(), 401);

    await page.waitForLoadState('load');
    assert.equal(pathOf(page), '/login');
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.equal((await alert.innerText()).trim(), 'Incorrect email or password.');

    // Not signed in.
    await page.goto(`${baseUrl}/account`);
    assert.equal(pathOf(page), '/login');
  }),
);
