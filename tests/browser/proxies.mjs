// Real reverse proxies for the forward-auth tests: Debian's nginx and Caddy, run with
// the configuration files from docs/proxies/ exactly as documented. Only what an
// operator changes is put in: the listening port, the certificate, and the addresses
// of portcullis and of the app. A small upstream app echoes the headers it receives.

import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { freePort } from './harness.mjs';

const DOCS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'proxies');

/** What the documented files say, and what each test puts in its place. */
export const DOC_PORTCULLIS = '127.0.0.1:8080';
export const DOC_APP = '127.0.0.1:3000';

/** A self-signed certificate for example.com and its subdomains. */
export function makeCertificate(dir) {
  const crt = path.join(dir, 'example.com.crt');
  const key = path.join(dir, 'example.com.key');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-keyout', key, '-out', crt, '-subj', '/CN=example.com',
    '-addext', 'subjectAltName=DNS:example.com,DNS:*.example.com',
  ], { stdio: 'ignore' });
  return { crt, key };
}

/** The app behind the proxy: answers every request with the headers it got, as JSON. */
export async function startEchoApp() {
  const port = await freePort();
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    const seen = JSON.stringify({ url: req.url, headers: req.headers });
    res.end(`<!doctype html><title>app</title><pre id="seen">${seen.replace(/</g, '\\u003c')}</pre>`);
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { port, stop: () => new Promise((r) => server.close(r)) };
}

function substitute(text, { portcullisPort, appPort }) {
  return text
    .replaceAll(DOC_PORTCULLIS, `127.0.0.1:${portcullisPort}`)
    .replaceAll(DOC_APP, `127.0.0.1:${appPort}`);
}

/** Waits until `host` answers over TLS on `port` (any status). */
async function waitForTls(port, host, proc, logs) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`proxy exited early:\n${logs()}`);
    const ok = await new Promise((resolve) => {
      const req = https.get(
        { host: '127.0.0.1', port, servername: host, headers: { host }, path: '/healthz', rejectUnauthorized: false, timeout: 2000 },
        (res) => { res.resume(); resolve(true); },
      );
      req.on('error', () => resolve(false));
      req.on('timeout', () => { req.destroy(); resolve(false); });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`proxy did not answer on ${port}:\n${logs()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function run(cmd, args, env) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  process.on('exit', () => { try { child.kill('SIGKILL'); } catch { /* gone */ } });
  const stop = () => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, 5000);
  });
  return { child, logs: () => out, stop };
}

/** nginx with docs/proxies/nginx.conf, included from a minimal main file. */
export async function startNginx(dir, { port, portcullisPort, appPort }) {
  const { crt, key } = makeCertificate(dir);
  const site = substitute(readFileSync(path.join(DOCS, 'nginx.conf'), 'utf8'), { portcullisPort, appPort })
    .replaceAll('listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`)
    .replaceAll('/etc/ssl/example.com.crt', crt)
    .replaceAll('/etc/ssl/example.com.key', key);
  writeFileSync(path.join(dir, 'portcullis.conf'), site);
  const main = `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  include ${dir}/portcullis.conf;
}
`;
  writeFileSync(path.join(dir, 'nginx.conf'), main);
  const proc = run('nginx', ['-e', `${dir}/nginx-error.log`, '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;']);
  const logs = () => {
    let errs = '';
    try { errs = readFileSync(path.join(dir, 'nginx-error.log'), 'utf8'); } catch { /* none yet */ }
    return proc.logs() + errs;
  };
  await waitForTls(port, 'auth.example.com', proc.child, logs);
  return { port, logs, stop: proc.stop };
}

/** Caddy with docs/proxies/Caddyfile, after global options that only set ports,
 * storage, and certificates from Caddy's own local CA (no ACME). */
export async function startCaddy(dir, { port, portcullisPort, appPort }) {
  const httpPort = await freePort();
  const sites = substitute(readFileSync(path.join(DOCS, 'Caddyfile'), 'utf8'), { portcullisPort, appPort });
  const file = path.join(dir, 'Caddyfile');
  writeFileSync(file, `{
	admin off
	http_port ${httpPort}
	https_port ${port}
	local_certs
	skip_install_trust
	storage file_system ${dir}/caddy-data
}

${sites}`);
  const proc = run('caddy', ['run', '--config', file, '--adapter', 'caddyfile'], {
    HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir,
  });
  await waitForTls(port, 'auth.example.com', proc.child, proc.logs);
  return { port, logs: proc.logs, stop: proc.stop };
}
