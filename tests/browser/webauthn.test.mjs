// Passkeys and security keys in a real Chromium, with Chrome's virtual authenticator
// (DevTools protocol) standing in for a platform authenticator with user verification.

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

const pathOf = (page) => new URL(page.url()).pathname;

/** A page whose browser context has a virtual authenticator attached. */
async function pageWithAuthenticator(browser) {
  const context = await browser.newContext();
  context.setDefaultTimeout(ACTION_TIMEOUT_MS);
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { page, cdp, authenticatorId };
}

test('add a passkey, sign in with it alone, and use it as the second step', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const server = await startPortcullis();
  const browser = await launchBrowser();
  let page;
  try {
    const email = uniqueEmail('pia');
    await server.createUser({ email, name: 'Pia', password: STRONG_PASSWORD });
    const v = await pageWithAuthenticator(browser);
    page = v.page;
    const { baseUrl } = server;

    await signIn(page, baseUrl, email);
    await page.goto(`${baseUrl}/account/security-keys`);
    await page.getByLabel('Name', { exact: true }).fill('Laptop');
    await page.getByRole('button', { name: 'Add passkey' }).click();
    await page.waitForURL((u) => u.pathname === '/account/security-keys' && u.searchParams.get('done') === 'added');
    assert.equal((await page.locator('.key-name').innerText()).trim(), 'Laptop');
    assert.match(await page.locator('tr.key').innerText(), /Passkey/);
    const { credentials } = await v.cdp.send('WebAuthn.getCredentials', { authenticatorId: v.authenticatorId });
    assert.equal(credentials.length, 1);
    assert.equal(credentials[0].isResidentCredential, true, 'a passkey is discoverable');

    // Passwordless through autofill (conditional UI): the virtual authenticator answers
    // the login page's pending request on its own, as a user picking the passkey would.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((u) => u.pathname === '/account');
    assert.equal((await page.locator('#account-email').innerText()).trim(), email);

    // Passwordless through the button, in a browser without autofill for passkeys.
    await page.context().addInitScript(() => {
      PublicKeyCredential.isConditionalMediationAvailable = async () => false;
    });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((u) => u.pathname === '/login');
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL((u) => u.pathname === '/account');
    assert.equal((await page.locator('#account-email').innerText()).trim(), email);

    // With a passkey on the account, the password alone is not enough.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((u) => u.pathname === '/login');
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Password', { exact: true }).fill(STRONG_PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL((u) => u.pathname === '/login/mfa');
    await page.getByRole('button', { name: 'Use a security key' }).click();
    await page.waitForURL((u) => u.pathname === '/account');

    // Without an authenticator the page says so instead of failing silently.
    await v.cdp.send('WebAuthn.setUserVerified', { authenticatorId: v.authenticatorId, isUserVerified: false });
    await page.goto(`${baseUrl}/account/security-keys`);
    await page.getByLabel('Name', { exact: true }).fill('Second');
    await page.getByRole('button', { name: 'Add security key' }).click();
    const alert = page.locator('.webauthn-error');
    await alert.waitFor({ state: 'visible' });
    assert.ok((await alert.innerText()).length > 10);
    assert.equal(await page.locator('tr.key').count(), 1);
  } catch (err) {
    if (page) {
      const file = await screenshot(page, t.name);
      if (file) t.diagnostic(`screenshot: ${file}`);
    }
    const logs = server.logs().trim();
    if (logs) t.diagnostic(`server log:\n${logs.slice(-4000)}`);
    throw err;
  } finally {
    await browser.close().catch(() => {});
    await server.stop();
  }
});
