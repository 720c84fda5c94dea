// The device flow (RFC 8628) end to end: a device played by the `openid-client`
// library starts a device authorization and polls the token endpoint, while the user,
// in a real Chromium, signs in, opens /device, enters the code and answers. Allow: the
// polling device gets its tokens. Deny: the device is told access_denied.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as oidc from 'openid-client';

import { launchBrowser, runCli, screenshot, signIn, startPortcullis, uniqueEmail } from './harness.mjs';

const TEST_TIMEOUT_MS = 120_000;
const ACTION_TIMEOUT_MS = 15_000;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/**
 * The device's view of portcullis: discovery as a public client. The server listens on
 * 127.0.0.1 while its public URL says `localhost`, which Node may resolve to ::1
 * first; requests go to the loopback address it listens on, under the same URLs.
 */
async function deviceClient(server, clientId) {
  const viaLoopback = (url, options) =>
    fetch(url.replace(`//localhost:${server.port}`, `//127.0.0.1:${server.port}`), options);
  const config = await oidc.discovery(new URL(server.baseUrl), clientId, undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
    [oidc.customFetch]: viaLoopback,
  });
  config[oidc.customFetch] = viaLoopback;
  return config;
}

/** Runs `body(server, page, device, email)` with a device client registered from the shell. */
async function withDevice(t, body) {
  const server = await startPortcullis();
  const browser = await launchBrowser();
  const pages = [];
  try {
    const email = uniqueEmail('tess');
    await server.createUser({ email, name: 'Tess' });
    // A device-only client: no redirect URI.
    const out = await runCli(server, [
      'client', 'create', '--name', 'Living Room TV', '--public',
      '--grant', DEVICE_GRANT, '--grant', 'refresh_token',
      '--scope', 'openid', '--scope', 'email',
    ]);
    const clientId = /client_id=(\S+)/.exec(out)[1];
    const device = await deviceClient(server, clientId);
    assert.equal(
      device.serverMetadata().device_authorization_endpoint,
      `${server.baseUrl}/oauth/device_authorization`,
    );
    const ctx = await browser.newContext();
    ctx.setDefaultTimeout(ACTION_TIMEOUT_MS);
    const page = await ctx.newPage();
    pages.push(page);
    await signIn(page, server.baseUrl, email);
    await body(server, page, device, email);
  } catch (err) {
    for (const [i, p] of pages.entries()) {
      const file = await screenshot(p, `${t.name}-${i}`);
      if (file) t.diagnostic(`screenshot of page ${i} (${p.url()}): ${file}`);
    }
    const logs = server.logs().trim();
    if (logs) t.diagnostic(`server log:\n${logs.slice(-4000)}`);
    throw err;
  } finally {
    await browser.close().catch(() => {});
    await server.stop();
  }
}

test('a device shows a code; the user enters it at /device and allows; the device gets tokens', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  await withDevice(t, async (server, page, device, email) => {
    const started = await oidc.initiateDeviceAuthorization(device, { scope: 'openid email' });
    assert.match(started.user_code, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
    assert.equal(started.verification_uri, `${server.baseUrl}/device`);
    // The device polls (every `interval` seconds) while the user answers.
    const polling = oidc.pollDeviceAuthorizationGrant(device, started);

    await page.goto(started.verification_uri);
    await page.getByLabel('Code', { exact: true }).fill(started.user_code.toLowerCase());
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { name: 'Allow Living Room TV on your device?' }).waitFor();
    assert.match(await page.locator('main').innerText(), new RegExp(`Signed in as ${email}`));
    assert.match(await page.locator('ul.scopes').innerText(), /See your email address/);
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.getByRole('heading', { name: 'Device connected' }).waitFor();

    const tokens = await polling;
    assert.ok(tokens.access_token);
    assert.ok(tokens.refresh_token, 'the client has the refresh_token grant');
    assert.equal(tokens.claims().email, email);
    const info = await oidc.fetchUserInfo(device, tokens.access_token, tokens.claims().sub);
    assert.equal(info.email, email);
  });
});

test('a user who denies a device: the polling device is told access_denied', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  await withDevice(t, async (server, page, device) => {
    const started = await oidc.initiateDeviceAuthorization(device, { scope: 'openid' });
    const polling = oidc.pollDeviceAuthorizationGrant(device, started);
    // The link with the code (what a QR code on the TV holds) skips the typing.
    await page.goto(started.verification_uri_complete);
    await page.getByRole('heading', { name: 'Allow Living Room TV on your device?' }).waitFor();
    await page.getByRole('button', { name: 'Deny' }).click();
    await page.getByRole('heading', { name: 'Access denied' }).waitFor();
    await assert.rejects(polling, (err) => {
      assert.equal(err.error, 'access_denied');
      return true;
    });
    // A code that is wrong is told so on the page.
    await page.goto(`${server.baseUrl}/device`);
    await page.getByLabel('Code', { exact: true }).fill('BCDF-GHJK');
    await page.getByRole('button', { name: 'Continue' }).click();
    assert.match(await page.getByRole('alert').innerText(), /not valid/);
  });
});
