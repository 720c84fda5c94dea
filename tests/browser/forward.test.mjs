// Forward auth behind real proxies, set up from the project's own docs
// (docs/proxies/nginx.conf and docs/proxies/Caddyfile), driven by Chromium: the app on
// a host of its own (app.example.com) beside the sign-in pages (auth.example.com),
// over TLS, with the session cookie written for example.com.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { freePort, launchBrowser, runCli, screenshot, startPortcullis, STRONG_PASSWORD, uniqueEmail } from './harness.mjs';
import { startCaddy, startEchoApp, startNginx } from './proxies.mjs';

const TEST_TIMEOUT_MS = 180_000;
const ACTION_TIMEOUT_MS = 15_000;
/** One personal access token's budget a minute in the token test. */
const TOKEN_USES = 40;

// The access rules of the second test, as an operator would write them (README,
// "Access rules"), in the environment's JSON form.
const RULES = [
  { name: 'app: public', domain: 'app.example.com', path: '/public', policy: 'bypass' },
  { name: 'app: admins', domain: 'app.example.com', path: '/admin', subject: 'role:admin', policy: 'one_factor' },
  { name: 'app: admin area closed', domain: 'app.example.com', path: '/admin', policy: 'deny' },
  { name: 'app: vault', domain: 'app.example.com', path: '/vault', policy: 'two_factor' },
  { name: 'app', domain: 'app.example.com', policy: 'one_factor' },
];

function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of text.replace(/[\s=]/g, '').toUpperCase()) {
    bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** RFC 6238 code (SHA-1, 6 digits, 30 s) for the step `offset` steps from now. */
function totp(key, offset = 0) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + offset));
  const mac = createHmac('sha1', base32(key)).update(counter).digest();
  const o = mac[mac.length - 1] & 0xf;
  return ((mac.readUInt32BE(o) & 0x7fffffff) % 1_000_000).toString().padStart(6, '0');
}

/** portcullis, an echo app and the proxy, on one port, as the docs set them up. */
async function startStack(name, startProxy, extraEnv = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `portcullis-${name}-`));
  const port = await freePort();
  const server = await startPortcullis({
    extraEnv: {
      PORTCULLIS_PUBLIC_URL: `https://auth.example.com:${port}`,
      PORTCULLIS_COOKIE_DOMAINS: 'example.com',
      PORTCULLIS_TRUSTED_PROXIES: '127.0.0.1',
      // The proxy listens on a test port, not 443: allow that port.
      PORTCULLIS_FORWARD_AUTH_ALLOWED_DOMAINS: `example.com:${port}`,
      ...extraEnv,
    },
  });
  const upstream = await startEchoApp();
  let proxy = null;
  try {
    proxy = await startProxy(dir, { port, portcullisPort: server.port, appPort: upstream.port });
  } catch (err) {
    await upstream.stop();
    await server.stop();
    throw err;
  }
  return {
    server,
    proxy,
    auth: `https://auth.example.com:${port}`,
    app: `https://app.example.com:${port}`,
    async stop() {
      await proxy.stop();
      await upstream.stop();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * curl through the proxy (the host names resolved to loopback, the test certificate
 * accepted): what a script would run. Resolves with {status, body}.
 */
function curl(url, args = []) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    execFile(
      'curl',
      ['-sk', '--max-time', '10', '--resolve', `${u.hostname}:${u.port}:127.0.0.1`, '-o', '-', '-w', '\n%{http_code}', ...args, url],
      (err, stdout) => {
        if (err) return reject(err);
        const cut = stdout.lastIndexOf('\n');
        resolve({ status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) });
      },
    );
  });
}

/** Retries `probe` until it returns true; a server on SQLite alone sees another
 * process's change within two seconds (with Redis, at once). */
async function eventually(what, probe) {
  const deadline = Date.now() + 5_000;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) assert.fail(`${what}: not within 5 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function signInHere(page, email) {
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(STRONG_PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

for (const [name, startProxy] of [['nginx', startNginx], ['Caddy', startCaddy]]) {
  test(`${name}: anonymous → hosted sign-in → back on the app with the user, forged headers dropped, a disabled user refused`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), `portcullis-${name}-`));
    const port = await freePort();
    const auth = `https://auth.example.com:${port}`;
    const app = `https://app.example.com:${port}`;
    const server = await startPortcullis({
      extraEnv: {
        PORTCULLIS_PUBLIC_URL: auth,
        PORTCULLIS_COOKIE_DOMAINS: 'example.com',
        PORTCULLIS_TRUSTED_PROXIES: '127.0.0.1',
        // The proxy listens on a test port, not 443: allow that port.
        PORTCULLIS_FORWARD_AUTH_ALLOWED_DOMAINS: `example.com:${port}`,
      },
    });
    const upstream = await startEchoApp();
    let proxy = null;
    const browser = await launchBrowser(['--host-resolver-rules=MAP *.example.com 127.0.0.1']);
    let page = null;
    try {
      proxy = await startProxy(dir, { port, portcullisPort: server.port, appPort: upstream.port });
      // No display name: Remote-Name is then empty, the case a proxy forgets to clear.
      const email = uniqueEmail('ana');
      await server.createUser({ email });

      const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
      ctx.setDefaultTimeout(ACTION_TIMEOUT_MS);
      page = await ctx.newPage();
      // A client that tries to pass as someone else on every request.
      await ctx.setExtraHTTPHeaders({
        'Remote-User': 'forged-id',
        'Remote-Email': 'boss@example.com',
        'Remote-Name': 'The Boss',
        'Remote-Groups': 'admins',
        'Remote-Roles': 'admin',
      });

      const deep = `${app}/search?q=alpha&page=2`;
      await page.goto(deep);
      assert.equal(new URL(page.url()).origin, auth, 'sent to the hosted sign-in');
      assert.equal(new URL(page.url()).pathname, '/login');
      await page.getByLabel('Email', { exact: true }).fill(email);
      await page.getByLabel('Password', { exact: true }).fill(STRONG_PASSWORD);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.waitForURL((u) => u.origin === app);
      assert.equal(page.url(), deep, 'back at the deep link, every query parameter kept');

      const seen = JSON.parse(await page.locator('#seen').innerText());
      assert.equal(seen.url, '/search?q=alpha&page=2');
      assert.equal(seen.headers['remote-email'], email, 'the real user, not the forged one');
      assert.notEqual(seen.headers['remote-user'], 'forged-id');
      assert.ok(!seen.headers['remote-name'], `no forged name: ${seen.headers['remote-name']}`);
      assert.ok(!seen.headers['remote-roles'], `no forged roles: ${seen.headers['remote-roles']}`);
      assert.ok(!seen.headers['remote-groups'], `no forged groups: ${seen.headers['remote-groups']}`);

      // Disabled from the shell: the very next request to the app is sent to sign in
      // (the command line tells the server through Redis, or on SQLite through the
      // cache generation they share).
      await runCli(server, ['user', 'disable', '--email', email]);
      await page.goto(`${app}/other`);
      assert.equal(new URL(page.url()).origin, auth, 'a disabled user is refused at once');
      assert.equal(new URL(page.url()).pathname, '/login');
    } catch (err) {
      if (page) t.diagnostic(`screenshot: ${await screenshot(page, `forward-${name}`)}`);
      t.diagnostic(`proxy log:\n${proxy ? proxy.logs().slice(-3000) : '(not started)'}`);
      t.diagnostic(`portcullis log:\n${server.logs().slice(-3000)}`);
      throw err;
    } finally {
      await browser.close();
      if (proxy) await proxy.stop();
      await upstream.stop();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}


for (const [name, startProxy] of [['nginx', startNginx], ['Caddy', startCaddy]]) {
  test(`${name}: access rules - a public path, an admin-only path refused with an explanation, a two-factor path that steps the user up`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const stack = await startStack(`${name}-rules`, startProxy, {
      PORTCULLIS_ACCESS_DEFAULT: 'deny',
      PORTCULLIS_ACCESS_RULE: JSON.stringify(RULES),
    });
    const { server, auth, app } = stack;
    const browser = await launchBrowser(['--host-resolver-rules=MAP *.example.com 127.0.0.1']);
    let page = null;
    try {
      const email = uniqueEmail('rui');
      await server.createUser({ email, name: 'Rui' });
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
      ctx.setDefaultTimeout(ACTION_TIMEOUT_MS);
      page = await ctx.newPage();

      // A public path: no sign-in, and no user in the headers.
      let res = await page.goto(`${app}/public/about`);
      assert.equal(res.status(), 200);
      assert.equal(new URL(page.url()).origin, app, 'served without signing in');
      let seen = JSON.parse(await page.locator('#seen').innerText());
      assert.ok(!seen.headers['remote-user'], 'anonymous on the public path');

      // The admin area, asked for anonymously: who asks decides it, so sign in first.
      await page.goto(`${app}/admin/users`);
      assert.equal(new URL(page.url()).pathname, '/login');
      await signInHere(page, email);
      await page.getByRole('heading', { name: /^No access to app\.example\.com/ }).waitFor();
      assert.match(await page.locator('main').innerText(), /does not have access to app\.example\.com/);
      assert.ok(!(await page.content()).includes('"url"'), 'the app never saw the request');

      // A path for anyone signed in: through, with the user.
      await page.goto(`${app}/home`);
      seen = JSON.parse(await page.locator('#seen').innerText());
      assert.equal(seen.headers['remote-email'], email);

      // The vault asks for a second factor; without one the page says how to add it.
      await page.goto(`${app}/vault`);
      await page.getByRole('heading', { name: /^No access to app\.example\.com/ }).waitFor();
      assert.match(await page.locator('main').innerText(), /asks for a second factor/);

      // The user adds an authenticator app, then opens the vault again: asked to confirm
      // the factor (a password sign-in does not count), then back at the vault.
      await page.goto(`${auth}/account/totp`);
      const key = (await page.locator('#manual-key').innerText()).trim();
      await page.getByLabel('Authentication code').fill(totp(key));
      await page.getByRole('button', { name: 'Enable' }).click();
      await page.getByRole('heading', { name: 'Recovery codes' }).waitFor();
      await page.goto(`${app}/vault?tab=keys`);
      await page.getByRole('heading', { name: 'Confirm it is you' }).waitFor();
      assert.equal(new URL(page.url()).origin, auth);
      await page.getByLabel('Password', { exact: true }).fill(STRONG_PASSWORD);
      await page.getByLabel('Authentication code').fill(totp(key, 1));
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.waitForURL((u) => u.origin === app);
      assert.equal(page.url(), `${app}/vault?tab=keys`);
      seen = JSON.parse(await page.locator('#seen').innerText());
      assert.equal(seen.headers['remote-email'], email);
      assert.equal(seen.headers['remote-name'], 'Rui');

    } catch (err) {
      if (page) t.diagnostic(`screenshot: ${await screenshot(page, `forward-rules-${name}`)}`);
      t.diagnostic(`proxy log:\n${stack.proxy.logs().slice(-3000)}`);
      t.diagnostic(`portcullis log:\n${server.logs().slice(-3000)}`);
      throw err;
    } finally {
      await browser.close();
      await stack.stop();
    }
  });
}


for (const [name, startProxy] of [['nginx', startNginx], ['Caddy', startCaddy]]) {
  test(`${name}: a script with a personal access token (Bearer, Basic from curl), a group rule that refuses then admits, a revoked token refused`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const rules = [
      { name: 'ops only', domain: 'app.example.com', path: '/ops', subject: 'group:ops', policy: 'one_factor' },
      { name: 'ops closed', domain: 'app.example.com', path: '/ops', policy: 'deny' },
      { name: 'app', domain: 'app.example.com', policy: 'one_factor' },
    ];
    const stack = await startStack(`${name}-tokens`, startProxy, {
      PORTCULLIS_ACCESS_DEFAULT: 'deny',
      PORTCULLIS_ACCESS_RULE: JSON.stringify(rules),
      PORTCULLIS_PERSONAL_TOKEN_USES_PER_MINUTE: String(TOKEN_USES),
    });
    const { server, auth, app } = stack;
    const browser = await launchBrowser(['--host-resolver-rules=MAP *.example.com 127.0.0.1']);
    let page = null;
    try {
      const email = uniqueEmail('sky');
      await server.createUser({ email, name: 'Sky' });
      const out = await runCli(server, ['token', 'create', '--email', email, '--name', 'backup script']);
      const token = out.match(/token=(\S+)/)[1];

      // Bearer and Basic (email + token) reach the app as the token's owner.
      let r = await curl(`${app}/report?week=12&format=csv`, ['-H', `Authorization: Bearer ${token}`]);
      assert.equal(r.status, 200, r.body);
      let seen = JSON.parse(r.body.match(/<pre id="seen">([\s\S]*?)<\/pre>/)?.[1] ?? r.body);
      assert.equal(seen.headers['remote-email'], email);
      assert.equal(seen.url, '/report?week=12&format=csv');
      r = await curl(`${app}/report`, ['-u', `${email}:${token}`]);
      assert.equal(r.status, 200, r.body);

      // The account password is never a Basic password here; nor is a made-up token.
      r = await curl(`${app}/report`, ['-u', `${email}:${STRONG_PASSWORD}`]);
      assert.equal(r.status, 401, r.body);
      r = await curl(`${app}/report`, ['-H', 'Authorization: Bearer pcp_madeup']);
      assert.equal(r.status, 401, r.body);

      // A group rule refuses Sky until an admin adds Sky to the group.
      r = await curl(`${app}/ops/deploy`, ['-H', `Authorization: Bearer ${token}`]);
      assert.equal(r.status, 403, r.body);
      await runCli(server, ['group', 'create', '--name', 'ops']);
      await runCli(server, ['group', 'add', '--group', 'ops', '--email', email]);
      await eventually('a new member is admitted', async () => {
        r = await curl(`${app}/ops/deploy`, ['-H', `Authorization: Bearer ${token}`]);
        return r.status === 200;
      });
      seen = JSON.parse(r.body.match(/<pre id="seen">([\s\S]*?)<\/pre>/)?.[1] ?? r.body);
      assert.equal(seen.headers['remote-groups'], 'ops');

      // Each token has its own budget: past it, 429 with Retry-After (through nginx
      // too, whose documented configuration turns portcullis's 403 + Retry-After into
      // the 429), and the account's other token goes on working.
      const busy = (await runCli(server, ['token', 'create', '--email', email, '--name', 'busy loop']))
        .match(/token=(\S+)/)[1];
      const statuses = [];
      for (let i = 0; i < TOKEN_USES; i += 1) {
        statuses.push((await curl(`${app}/report`, ['-H', `Authorization: Bearer ${busy}`])).status);
      }
      assert.deepEqual([...new Set(statuses)], [200], 'within its budget');
      r = await curl(`${app}/report`, ['-H', `Authorization: Bearer ${busy}`, '-w', '\n%header{retry-after}\n%{http_code}']);
      assert.equal(r.status, 429, r.body);
      const retryAfter = Number(r.body.slice(r.body.lastIndexOf('\n') + 1));
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
      r = await curl(`${app}/report`, ['-H', `Authorization: Bearer ${token}`]);
      assert.equal(r.status, 200, 'another token of the account is not slowed down');

      // In the browser, a signed-out visitor to the group's path signs in and gets the
      // page; the same person revokes the token on /account/tokens.
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
      ctx.setDefaultTimeout(ACTION_TIMEOUT_MS);
      page = await ctx.newPage();
      await page.goto(`${app}/ops/status`);
      await signInHere(page, email);
      await page.waitForURL((u) => u.origin === app);
      assert.equal(new URL(page.url()).pathname, '/ops/status');
      await page.goto(`${auth}/account/tokens`);
      assert.equal(await page.locator('tr.token').count(), 2);
      const row = page.locator('tr.token', { hasText: 'backup script' });
      await row.getByRole('button', { name: 'Revoke' }).click();
      // A confirmation step first, naming the token; the token still works meanwhile.
      await page.getByRole('heading', { name: 'Revoke this token?' }).waitFor();
      assert.match(await page.locator('#confirm p').innerText(), /"backup script"/);
      r = await curl(`${app}/report`, ['-H', `Authorization: Bearer ${token}`]);
      assert.equal(r.status, 200, 'not revoked before the confirmation');
      await page.getByRole('button', { name: 'Yes, revoke' }).click();
      await page.waitForURL((u) => u.pathname === '/account/tokens');
      await page.locator('tr.token', { hasText: 'backup script' }).waitFor({ state: 'detached' });
      assert.equal(await page.locator('tr.token').count(), 1);

      // Revoked in this very server: refused at the next request.
      r = await curl(`${app}/report`, ['-H', `Authorization: Bearer ${token}`]);
      assert.equal(r.status, 401, 'a revoked token is refused at once');
    } catch (err) {
      if (page) t.diagnostic(`screenshot: ${await screenshot(page, `forward-tokens-${name}`)}`);
      t.diagnostic(`proxy log:\n${stack.proxy.logs().slice(-3000)}`);
      t.diagnostic(`portcullis log:\n${server.logs().slice(-3000)}`);
      throw err;
    } finally {
      await browser.close();
      await stack.stop();
    }
  });
}
