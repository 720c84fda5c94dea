// Hosted login for an app, in a real Chromium: an app on a loopback address sends the
// user to portcullis, who signs in with a password and an authenticator-app code,
// allows the app on the consent page, and comes back to the app with a code that the
// app exchanges for tokens at the token endpoint. A second app, built on the
// relying-party library openid-client, pushes its request first (PAR, RFC 9126).

import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import { test } from 'node:test';

import * as oidc from 'openid-client';

import {
  freePort,
  launchBrowser,
  runCli,
  screenshot,
  signIn,
  startPortcullis,
  uniqueEmail,
} from './harness.mjs';

const TEST_TIMEOUT_MS = 120_000;
const ACTION_TIMEOUT_MS = 15_000;

/** RFC 4648 base32 (the authenticator key as the page shows it). */
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of text.replace(/[\s=]/g, '').toUpperCase()) {
    const v = alphabet.indexOf(ch);
    if (v < 0) throw new Error(`not base32: ${ch}`);
    bits += v.toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** RFC 6238 code (SHA-1, 6 digits, 30 s) for the step `offset` steps from now. */
function totp(key, offset = 0) {
  const step = Math.floor(Date.now() / 1000 / 30) + offset;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(key)).update(counter).digest();
  const o = mac[mac.length - 1] & 0xf;
  const n = (mac.readUInt32BE(o) & 0x7fffffff) % 1_000_000;
  return n.toString().padStart(6, '0');
}

const b64url = (buf) => buf.toString('base64url');

/**
 * A tiny relying party on 127.0.0.1: `/` starts the sign-in (state, nonce, PKCE), and
 * `/callback` checks the state, exchanges the code server-side and shows who signed in.
 */
async function startApp({ port, issuer, internalBase, clientId, clientSecret }) {
  const redirectUri = `http://127.0.0.1:${port}/callback`;
  const pending = new Map();
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, redirectUri);
    if (url.pathname === '/') {
      const state = b64url(randomBytes(16));
      const nonce = b64url(randomBytes(16));
      const verifier = b64url(randomBytes(32));
      pending.set(state, { nonce, verifier });
      const auth = new URL(`${issuer}/oauth/authorize`);
      auth.search = new URLSearchParams({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: redirectUri,
        scope: 'openid email profile',
        state,
        nonce,
        code_challenge: b64url(createHash('sha256').update(verifier).digest()),
        code_challenge_method: 'S256',
      }).toString();
      res.writeHead(302, { location: auth.toString() }).end();
      return;
    }
    if (url.pathname === '/callback') {
      const state = url.searchParams.get('state');
      const request = pending.get(state);
      pending.delete(state);
      if (!request || url.searchParams.get('iss') !== issuer) {
        res.writeHead(400).end('bad state or issuer');
        return;
      }
      const tokenRes = await fetch(`${internalBase}/oauth/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: url.searchParams.get('code'),
          redirect_uri: redirectUri,
          code_verifier: request.verifier,
        }).toString(),
      });
      const tokens = await tokenRes.json();
      if (tokenRes.status !== 200) {
        res.writeHead(502).end(`token endpoint said ${tokenRes.status}: ${JSON.stringify(tokens)}`);
        return;
      }
      const claims = JSON.parse(Buffer.from(tokens.id_token.split('.')[1], 'base64url'));
      const ok = claims.nonce === request.nonce && claims.aud === clientId;
      res
        .writeHead(ok ? 200 : 400, { 'content-type': 'text/html' })
        .end(
          `<h1 id="who">Signed in as ${claims.email}</h1><p id="amr">${(claims.amr || []).join(' ')}</p>`,
        );
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${port}`, redirectUri, close: () => server.close() };
}

test('an app sends the user to portcullis; they sign in with TOTP, consent, and come back signed in', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const server = await startPortcullis();
  const browser = await launchBrowser();
  let app;
  const pages = [];
  try {
    const email = uniqueEmail('rita');
    await server.createUser({ email, name: 'Rita' });
    const appPort = await freePort();
    const out = await runCli(server, [
      'client', 'create', '--name', 'Loopback Notes',
      '--redirect-uri', `http://127.0.0.1:${appPort}/callback`,
    ]);
    const clientId = /client_id=(\S+)/.exec(out)[1];
    const clientSecret = /client_secret=(\S+)/.exec(out)[1];

    const ctx = await browser.newContext();
    ctx.setDefaultTimeout(ACTION_TIMEOUT_MS);
    const page = await ctx.newPage();
    pages.push(page);

    // Rita turns on her authenticator app, then signs out.
    await signIn(page, server.baseUrl, email);
    await page.goto(`${server.baseUrl}/account/totp`);
    const key = (await page.locator('#manual-key').innerText()).trim();
    await page.getByLabel('Authentication code').fill(totp(key));
    await page.getByRole('button', { name: 'Enable' }).click();
    await page.getByRole('heading', { name: 'Recovery codes' }).waitFor();
    const recovery = (await page.locator('#recovery-codes li').first().innerText()).trim();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((u) => u.pathname === '/login');

    // The app (started on the port its redirect URI names) sends her to portcullis.
    app = await startApp({
      port: appPort,
      issuer: server.baseUrl,
      internalBase: `http://127.0.0.1:${server.port}`,
      clientId,
      clientSecret,
    });
    await page.goto(app.url);
    await page.waitForURL((u) => u.pathname === '/login');
    // The sign-in page says which app asked, and where it lives.
    const asked = 'Sign in to continue to Loopback Notes (127.0.0.1)';
    assert.equal(await page.locator('#app-context').innerText(), asked);
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Password', { exact: true }).fill('correct horse battery staple 42');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL((u) => u.pathname === '/login/mfa');
    assert.equal(await page.locator('#app-context').innerText(), asked);
    // The next step's code: the enrolment used this step's, and each works once.
    await page.getByLabel('Authentication code').fill(totp(key, 1));
    await page.getByRole('button', { name: 'Verify' }).click();

    // Consent, in plain words.
    await page.getByRole('heading', { name: 'Allow Loopback Notes?' }).waitFor();
    assert.match(await page.locator('ul.scopes').innerText(), /See your email address/);
    // It names the account that would answer, with a way to switch.
    assert.match(await page.locator('.account-switch').innerText(), new RegExp(`Signed in as ${email}`));
    await page.getByRole('button', { name: 'Use another account' }).waitFor();
    await page.getByRole('button', { name: 'Allow' }).click();

    // Back at the app, which exchanged the code for tokens.
    await page.waitForURL((u) => u.origin === app.url && u.pathname === '/callback');
    assert.equal(await page.locator('#who').innerText(), `Signed in as ${email}`);
    assert.match(await page.locator('#amr').innerText(), /\bmfa\b/);

    // Next time: consent is remembered, so signing in leads straight back to the app
    // (the sign-in forms' redirect chain ends at the app's registered origin).
    await page.goto(`${server.baseUrl}/account`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((u) => u.pathname === '/login');
    await page.goto(app.url);
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Password', { exact: true }).fill('correct horse battery staple 42');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL((u) => u.pathname === '/login/mfa');
    await page.getByLabel('Authentication code').fill(recovery);
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.waitForURL((u) => u.origin === app.url && u.pathname === '/callback');
    assert.equal(await page.locator('#who').innerText(), `Signed in as ${email}`);
  } catch (err) {
    for (const [i, p] of pages.entries()) {
      const file = await screenshot(p, `${t.name}-${i}`);
      if (file) t.diagnostic(`screenshot of page ${i} (${p.url()}): ${file}`);
    }
    const logs = server.logs().trim();
    if (logs) t.diagnostic(`server log:\n${logs.slice(-4000)}`);
    throw err;
  } finally {
    if (app) app.close();
    await browser.close().catch(() => {});
    await server.stop();
  }
});

/**
 * A relying party built on openid-client 6: `/` pushes the authorization request to
 * the PAR endpoint (`buildAuthorizationUrlWithPAR`) and sends the browser with the
 * request_uri; `/callback` redeems the code with the library's checks (state, nonce,
 * PKCE, `iss`, the ID token's signature).
 */
async function startParApp({ port, issuer, clientId, clientSecret }) {
  const redirectUri = `http://127.0.0.1:${port}/callback`;
  const config = await oidc.discovery(new URL(issuer), clientId, clientSecret, undefined, {
    execute: [oidc.allowInsecureRequests],
  });
  // The issuer is http://localhost:…, and the server listens on 127.0.0.1 only.
  config[oidc.customFetch] = (url, options) =>
    fetch(url.replace('//localhost:', '//127.0.0.1:'), options);
  const pending = new Map();
  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, redirectUri);
      if (url.pathname === '/') {
        const state = oidc.randomState();
        const nonce = oidc.randomNonce();
        const verifier = oidc.randomPKCECodeVerifier();
        pending.set(state, { nonce, verifier });
        const auth = await oidc.buildAuthorizationUrlWithPAR(config, {
          redirect_uri: redirectUri,
          scope: 'openid email',
          state,
          nonce,
          code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
          code_challenge_method: 'S256',
        });
        res.writeHead(302, { location: auth.href }).end();
        return;
      }
      if (url.pathname === '/callback') {
        const state = url.searchParams.get('state');
        const request = pending.get(state);
        pending.delete(state);
        const tokens = await oidc.authorizationCodeGrant(config, url, {
          pkceCodeVerifier: request?.verifier,
          expectedState: state,
          expectedNonce: request?.nonce,
          idTokenExpected: true,
        });
        res
          .writeHead(200, { 'content-type': 'text/html' })
          .end(`<h1 id="who">Signed in as ${tokens.claims().email}</h1>`);
        return;
      }
      res.writeHead(404).end();
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${port}`, redirectUri, close: () => server.close() };
}

test('an app built on openid-client pushes its request (PAR) and the user comes back signed in', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const server = await startPortcullis();
  const browser = await launchBrowser();
  let app;
  const pages = [];
  try {
    const email = uniqueEmail('pia');
    await server.createUser({ email, name: 'Pia' });
    const appPort = await freePort();
    const out = await runCli(server, [
      'client', 'create', '--name', 'Pushed Notes',
      '--redirect-uri', `http://127.0.0.1:${appPort}/callback`,
      '--require-par',
    ]);
    const clientId = /client_id=(\S+)/.exec(out)[1];
    const clientSecret = /client_secret=(\S+)/.exec(out)[1];
    app = await startParApp({ port: appPort, issuer: server.baseUrl, clientId, clientSecret });

    const ctx = await browser.newContext();
    ctx.setDefaultTimeout(ACTION_TIMEOUT_MS);
    const page = await ctx.newPage();
    pages.push(page);

    // The app pushed the request: the browser carries only client_id and request_uri.
    await page.goto(app.url);
    await page.waitForURL((u) => u.pathname === '/login');
    const next = new URL(new URL(page.url()).searchParams.get('next'), server.baseUrl);
    assert.deepEqual([...next.searchParams.keys()].sort(), ['client_id', 'request_uri']);
    assert.match(next.searchParams.get('request_uri'), /^urn:ietf:params:oauth:request_uri:/);
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Password', { exact: true }).fill('correct horse battery staple 42');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();

    await page.getByRole('heading', { name: 'Allow Pushed Notes?' }).waitFor();
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((u) => u.origin === app.url && u.pathname === '/callback');
    assert.equal(await page.locator('#who').innerText(), `Signed in as ${email}`);

    // Going back to the used link gets an error page, not a second code.
    const res = await page.goto(next.href);
    assert.equal(res.status(), 400);
    assert.match(await page.locator('main').innerText(), /expired or was already used/);

    // The client requires PAR: a plain request for it is refused (sent back with
    // invalid_request, no code).
    const plain = new URL(`${server.baseUrl}/oauth/authorize`);
    plain.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: app.redirectUri,
      scope: 'openid',
      state: 'plain',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    }).toString();
    const refused = await fetch(plain.href.replace('//localhost:', '//127.0.0.1:'), {
      redirect: 'manual',
    });
    const back = new URL(refused.headers.get('location'));
    assert.equal(back.searchParams.get('error'), 'invalid_request');
    assert.equal(back.searchParams.get('code'), null);
  } catch (err) {
    for (const [i, p] of pages.entries()) {
      const file = await screenshot(p, `${t.name}-${i}`);
      if (file) t.diagnostic(`screenshot of page ${i} (${p.url()}): ${file}`);
    }
    const logs = server.logs().trim();
    if (logs) t.diagnostic(`server log:\n${logs.slice(-4000)}`);
    throw err;
  } finally {
    if (app) app.close();
    await browser.close().catch(() => {});
    await server.stop();
  }
});
