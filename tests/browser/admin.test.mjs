// The admin pages in a real Chromium: find a user, disable them (their open session
// ends at once), and find the event in the audit log; and the menu on a narrow screen.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { launchBrowser, screenshot, signIn, startPortcullis, uniqueEmail } from './harness.mjs';

const TEST_TIMEOUT_MS = 120_000;
const ACTION_TIMEOUT_MS = 15_000;

/**
 * Runs `body({server, newPage})` with a fresh server (admins need no second factor: the
 * tests here are about the pages; that rule has its own tests) and browser; on failure,
 * saves a screenshot of every open page and prints the server's log.
 */
async function withAdminApp(t, body) {
  const server = await startPortcullis({ extraEnv: { PORTCULLIS_ADMIN_REQUIRES_SECOND_FACTOR: 'false' } });
  const browser = await launchBrowser();
  const pages = [];
  try {
    const newPage = async (options = {}) => {
      const ctx = await browser.newContext(options);
      ctx.setDefaultTimeout(ACTION_TIMEOUT_MS);
      const p = await ctx.newPage();
      pages.push(p);
      return p;
    };
    await body({ server, newPage });
  } catch (err) {
    for (const [i, p] of pages.entries()) {
      const file = await screenshot(p, `${t.name}-${i}`);
      if (file) t.diagnostic(`screenshot ${i}: ${file}`);
    }
    const logs = server.logs().trim();
    if (logs) t.diagnostic(`server log:\n${logs.slice(-4000)}`);
    throw err;
  } finally {
    await browser.close().catch(() => {});
    await server.stop();
  }
}

test('an admin finds a user, disables them, and sees it in the audit log', { timeout: TEST_TIMEOUT_MS }, (t) =>
  withAdminApp(t, async ({ server, newPage }) => {
    const admin = uniqueEmail('boss');
    const target = uniqueEmail('zoe');
    await server.createUser({ email: admin, name: 'Boss', roles: ['admin'] });
    await server.createUser({ email: target, name: 'Zoe Target' });
    const zoe = await newPage();
    await signIn(zoe, server.baseUrl, target);
    const page = await newPage();
    await signIn(page, server.baseUrl, admin);

    await page.getByRole('link', { name: 'Admin' }).click();
    await page.getByRole('link', { name: 'Users' }).click();
    await page.getByLabel('Search (email or name)').fill('zoe t');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: target }).click();
    assert.equal((await page.locator('#user-status').innerText()).trim(), 'Active');
    assert.equal(await page.locator('tr.session').count(), 1, "Zoe's session is listed");

    await page.getByRole('button', { name: 'Disable' }).click();
    await page.getByRole('heading', { name: 'Disable this account?' }).waitFor();
    await page.getByRole('button', { name: 'Yes, disable' }).click();
    await page.getByRole('status').waitFor();
    assert.match(await page.getByRole('status').innerText(), /disabled and signed out everywhere/);
    assert.equal((await page.locator('#user-status').innerText()).trim(), 'Disabled');

    // Zoe's open session is over.
    await zoe.goto(`${server.baseUrl}/account`);
    assert.equal(new URL(zoe.url()).pathname, '/login');

    await page.goto(`${server.baseUrl}/admin/audit`);
    await page.getByLabel('Event').selectOption('user.disabled');
    await page.getByRole('button', { name: 'Filter' }).click();
    const rows = page.locator('tr.event');
    await rows.first().waitFor();
    assert.equal(await rows.count(), 1);
    const row = await rows.first().innerText();
    assert.match(row, /user\.disabled/);
    assert.ok(row.includes(admin) && row.includes(target), `actor and target shown: ${row}`);

    await page.getByRole('link', { name: 'Verify the chain' }).click();
    assert.match(await page.locator('#verdict').innerText(), /intact/);
  }),
);

test('on a 320px screen the menu fits, marks the current page, and Sign out is reachable', { timeout: TEST_TIMEOUT_MS }, (t) =>
  withAdminApp(t, async ({ server, newPage }) => {
    const admin = uniqueEmail('narrow-admin-with-a-long-address');
    await server.createUser({ email: admin, name: 'Narrow', roles: ['admin'] });
    const page = await newPage({ viewport: { width: 320, height: 640 } });
    await signIn(page, server.baseUrl, admin);

    for (const [path, current] of [['/account', 'Account'], ['/account/sessions', 'Sessions'], ['/admin/users', 'Admin']]) {
      await page.goto(`${server.baseUrl}${path}`);
      const { scrollWidth, innerWidth } = await page.evaluate(() => ({
        scrollWidth: document.documentElement.scrollWidth,
        innerWidth: window.innerWidth,
      }));
      assert.ok(scrollWidth <= innerWidth, `${path}: page is ${scrollWidth}px wide in a ${innerWidth}px window`);

      const signOut = page.getByRole('button', { name: 'Sign out' });
      const box = await signOut.boundingBox();
      assert.ok(box, `${path}: Sign out is shown`);
      assert.ok(box.x >= 0 && box.x + box.width <= innerWidth, `${path}: Sign out is within the window: ${JSON.stringify(box)}`);

      const marked = page.locator('header nav a[aria-current="page"]');
      assert.equal(await marked.count(), 1, `${path}: one menu item is current`);
      assert.equal((await marked.innerText()).trim(), current, `${path}: the current item`);
    }
  }),
);
