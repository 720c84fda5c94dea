// Test harness for the browser tests: starts a real portcullis server on a free port
// (in a throw-away directory, with its own database) and a headless Debian Chromium
// driven by playwright-core. No browser is ever downloaded: Chromium comes from apt.

import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { chromium } from 'playwright-core';

const execFileP = promisify(execFile);

export const PORTCULLIS_BIN =
  process.env.PORTCULLIS_BIN || '/work/main/target/debug/portcullis';
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/** A password the server accepts (zxcvbn score >= 3). */
export const STRONG_PASSWORD = 'correct horse battery staple 42';

const HEALTH_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

/** Servers still running; killed if the test process exits without stopping them. */
const running = new Set();
process.on('exit', () => {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

export function randomHex(bytes = 6) {
  return randomBytes(bytes).toString('hex');
}

/** A unique, valid email address for one test. */
export function uniqueEmail(prefix = 'user') {
  return `${prefix}-${randomHex(4)}@example.com`;
}

/** Asks the kernel for a free TCP port on 127.0.0.1 (listen on port 0, then close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** Runs psql against `url` with one SQL command. */
async function psql(url, sql) {
  try {
    await execFileP('psql', [url, '-v', 'ON_ERROR_STOP=1', '-q', '-c', sql], {
      timeout: 30_000,
    });
  } catch (err) {
    throw new Error(`psql ${JSON.stringify(sql)} failed: ${err.stderr || err.message}`);
  }
}

/** Replaces the path (database name) of a PostgreSQL URL. */
function withDatabase(url, dbName) {
  const u = new URL(url);
  u.pathname = `/${dbName}`;
  return u.toString();
}

/**
 * The environment for the server and the CLI: the caller's environment, minus anything
 * the server would misread (it rejects unknown PORTCULLIS_* variables, and a stray
 * DATABASE_URL / REDIS_URL must not leak into a SQLite run), plus this run's settings.
 */
function serverEnv(extra) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k.startsWith('PORTCULLIS_')) delete env[k];
  }
  delete env.DATABASE_URL;
  delete env.REDIS_URL;
  return { ...env, ...extra };
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function waitForExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * Starts `portcullis serve` in a fresh temporary directory on a free port and waits for
 * GET /healthz to answer 200.
 *
 * Uses PostgreSQL when TEST_DATABASE_URL is set (a fresh database per run) and Redis when
 * TEST_REDIS_URL is set (a fresh key prefix per run); SQLite in the temp dir otherwise.
 *
 * @returns {Promise<{baseUrl: string, port: number, dir: string, env: object,
 *   logs: () => string, createUser: (u: object) => Promise<string>, stop: () => Promise<void>}>}
 */
export async function startPortcullis({ extraEnv = {} } = {}) {
  if (!existsSync(PORTCULLIS_BIN)) {
    throw new Error(
      `portcullis binary not found at ${PORTCULLIS_BIN} (run \`cargo build\`, or set PORTCULLIS_BIN)`,
    );
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portcullis-browser-'));
  const port = await freePort();
  const baseUrl = `http://localhost:${port}`;

  const env = serverEnv({
    PORTCULLIS_LISTEN: `127.0.0.1:${port}`,
    PORTCULLIS_PUBLIC_URL: baseUrl,
    PORTCULLIS_DATA_DIR: path.join(dir, 'data'),
    RUST_LOG: 'warn',
    ...extraEnv,
  });

  let pgAdminUrl = null;
  let pgDbName = null;
  if (process.env.TEST_DATABASE_URL) {
    pgAdminUrl = process.env.TEST_DATABASE_URL;
    pgDbName = `pc_browser_${randomHex(6)}`;
    await psql(pgAdminUrl, `CREATE DATABASE ${pgDbName}`);
    env.DATABASE_URL = withDatabase(pgAdminUrl, pgDbName);
  }
  if (process.env.TEST_REDIS_URL) {
    env.REDIS_URL = process.env.TEST_REDIS_URL;
    env.PORTCULLIS_REDIS_PREFIX = `browser${randomHex(6)}`;
  }

  const cleanupStorage = async () => {
    rmSync(dir, { recursive: true, force: true });
    if (pgDbName) {
      try {
        await psql(pgAdminUrl, `DROP DATABASE IF EXISTS ${pgDbName} WITH (FORCE)`);
      } catch {
        // best effort: a leftover test database is harmless
      }
    }
  };

  const child = spawn(PORTCULLIS_BIN, ['serve'], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  const collect = (chunk) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  let spawnError = null;
  child.on('error', (err) => {
    spawnError = err;
  });
  child.on('exit', () => running.delete(child));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      if (!(await waitForExit(child, STOP_TIMEOUT_MS))) {
        child.kill('SIGKILL');
        await waitForExit(child, STOP_TIMEOUT_MS);
      }
    }
    running.delete(child);
    await cleanupStorage();
  };

  // Poll /healthz (on 127.0.0.1 directly: the server listens there only).
  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  for (;;) {
    if (spawnError) {
      await stop();
      throw new Error(`could not start ${PORTCULLIS_BIN}: ${spawnError.message}`);
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      await sleep(50); // let the last output arrive
      await stop();
      throw new Error(
        `portcullis exited early (code ${child.exitCode}, signal ${child.signalCode}):\n${output}`,
      );
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, {
        signal: AbortSignal.timeout(2_000),
      });
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`portcullis did not become healthy within 30 s:\n${output}`);
    }
    await sleep(100);
  }

  const server = {
    baseUrl,
    port,
    dir,
    env,
    logs: () => output,
    stop,
    createUser: (user) => createUser(server, user),
    outboxDir: path.join(dir, 'data', 'outbox'),
    mailLink: (to, prefix) => mailLink(server, to, prefix),
  };
  return server;
}

/**
 * Waits (up to 10 s) for a message to `to` in the server's outbox folder (no SMTP is
 * configured, so mail is written there as .eml files) and returns the first absolute
 * link in it whose path starts with `prefix`, e.g. '/verify-email?token='.
 */
export async function mailLink(server, to, prefix) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    let files = [];
    try {
      files = readdirSync(server.outboxDir).filter((f) => f.endsWith('.eml'));
    } catch {
      // the folder appears with the first message
    }
    for (const f of files) {
      const raw = readFileSync(path.join(server.outboxDir, f), 'utf8');
      if (!raw.toLowerCase().includes(`to: ${to.toLowerCase()}`)) continue;
      // Undo quoted-printable: soft line breaks and =XX escapes.
      const text = raw.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
      const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const m = text.match(new RegExp(`https?://[^\\s"<>]*${escaped}[A-Za-z0-9_-]+`));
      if (m) return m[0];
    }
    if (Date.now() > deadline) throw new Error(`no mail to ${to} with ${prefix} in ${server.outboxDir}`);
    await sleep(100);
  }
}

/**
 * Runs `portcullis user create --email E [--name N] [--verified]` against the server's
 * storage, writing the password (and a newline) to standard input.
 * Resolves with the command's stdout; rejects with its stderr.
 */
export function createUser(
  server,
  { email, name, password = STRONG_PASSWORD, verified = true, roles = [] },
) {
  const args = ['user', 'create', '--email', email];
  if (name) args.push('--name', name);
  for (const r of roles) args.push('--role', r);
  if (verified) args.push('--verified');
  return runCli(server, args, `${password}\n`);
}

/**
 * Runs `portcullis ARGS…` against the server's storage with `stdin` as input.
 * Resolves with the command's stdout; rejects with its stderr.
 */
export function runCli(server, args, stdin = '') {
  return new Promise((resolve, reject) => {
    const child = spawn(PORTCULLIS_BIN, args, {
      cwd: server.dir,
      env: server.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve(stdout.trim());
      else
        reject(
          new Error(
            `portcullis ${args.join(' ')} failed (code ${code}, signal ${signal}): ${stderr.trim()}`,
          ),
        );
    });
    child.stdin.on('error', () => {}); // reported through the exit code
    child.stdin.end(stdin);
  });
}

/** Launches headless Debian Chromium (never a downloaded browser). */
export async function launchBrowser(extraArgs = []) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      ...extraArgs,
    ],
  });
}

/**
 * Signs in on /login in `page` and waits for the landing page (/account by default).
 */
export async function signIn(page, baseUrl, email, password = STRONG_PASSWORD) {
  await page.goto(`${baseUrl}/login`);
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL((u) => u.pathname === '/account');
}

/** Saves a full-page screenshot to the OS temp dir; returns its path (or null). */
export async function screenshot(page, name) {
  try {
    const file = path.join(
      os.tmpdir(),
      `portcullis-browser-${name.replace(/[^a-z0-9]+/gi, '-')}-${Date.now()}.png`,
    );
    await page.screenshot({ path: file, fullPage: true });
    return file;
  } catch {
    return null;
  }
}
