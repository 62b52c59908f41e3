// Signs a person in through Castellan's real login page in Debian's Chromium.
//
//   node signin.mjs <authorize-url> <username> <password> <screenshot-dir>
//
// Opens the authorization URL, submits a wrong password first and checks the
// page says so, then submits the right one and waits for the browser to land
// on the app's redirect URI (taken from the authorization URL). Screenshots go
// to <screenshot-dir>: 1-login.png, 2-error.png, 3-after.png (and failure.png
// when something goes wrong). On success the last line on stdout is the URL
// the browser ended on; progress and diagnostics go to stderr. Exit code 0
// only if every check passed. Driven by crates/castellan-cli/tests/browser_signin.rs.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const BAD_CREDENTIALS = 'Incorrect username or password.';
const CHROMIUM = '/usr/bin/chromium';
// After one failed attempt the authority makes the account wait one second
// (crates/castellan-authority/src/throttle.rs); a person types slower than that.
const RETYPE_PAUSE_MS = 1500;

const [authorizeUrl, username, password, shotDir] = process.argv.slice(2);
if (!authorizeUrl || !username || !password || !shotDir) {
  console.error('usage: node signin.mjs <authorize-url> <username> <password> <screenshot-dir>');
  process.exit(64);
}
const redirectUri = new URL(authorizeUrl).searchParams.get('redirect_uri');
if (!redirectUri) {
  console.error('the authorization URL has no redirect_uri');
  process.exit(64);
}
mkdirSync(shotDir, { recursive: true });

const log = (msg) => console.error(`signin.mjs: ${msg}`);
function check(ok, msg) {
  if (!ok) throw new Error(`check failed: ${msg}`);
  log(`ok: ${msg}`);
}

// Every top-level document the browser loaded, in order.
const documents = [];

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
let page;
try {
  const context = await browser.newContext({ viewport: { width: 800, height: 640 } });
  context.setDefaultTimeout(20_000);
  context.setDefaultNavigationTimeout(20_000);
  page = await context.newPage();
  page.on('console', (m) => log(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log(`page error: ${e}`));
  page.on('response', (r) => {
    const req = r.request();
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) {
      documents.push({ method: req.method(), url: r.url(), status: r.status(), location: r.headers()['location'] });
    }
  });

  // 1. The login page.
  const first = await page.goto(authorizeUrl);
  check(first && first.status() === 200, `login page answered ${first && first.status()}`);
  check((await page.locator('script').count()) === 0, 'the login page has no <script>');
  for (const sel of ['#username', '#password', '#submit']) {
    check(await page.locator(sel).isVisible(), `${sel} is visible`);
  }
  check((await page.locator('#error').count()) === 0, 'no error shown before any attempt');
  const loginCookie = (await context.cookies(authorizeUrl)).find((c) => c.name === 'castellan_login');
  check(loginCookie !== undefined, 'the page set the castellan_login cookie');
  check(loginCookie.httpOnly && loginCookie.sameSite === 'Lax' && loginCookie.path === '/oauth2',
    `castellan_login is HttpOnly, SameSite=Lax, Path=/oauth2 (${JSON.stringify({ ...loginCookie, value: '(hidden)' })})`);
  await page.screenshot({ path: join(shotDir, '1-login.png'), fullPage: true });

  // 2. A wrong password: the same page again, with the error and the name kept.
  await page.locator('#username').fill(username);
  await page.locator('#password').fill(`${password}-wrong`);
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/oauth2/login', { waitUntil: 'load' }),
    page.locator('#submit').click(),
  ]);
  const refused = documents[documents.length - 1];
  check(refused.method === 'POST' && new URL(refused.url).pathname === '/oauth2/login',
    `the form posted to /oauth2/login (${JSON.stringify(refused)})`);
  check(refused.status === 401, `a wrong password answers 401 (got ${refused.status})`);
  const error = (await page.locator('#error').innerText()).trim();
  check(error === BAD_CREDENTIALS, `the page says "${BAD_CREDENTIALS}" (it says "${error}")`);
  check(await page.locator('#error').isVisible(), 'the error is visible');
  check((await page.locator('#username').inputValue()) === username, 'the username is kept');
  check((await page.locator('#password').inputValue()) === '', 'the password field is empty again');
  await page.screenshot({ path: join(shotDir, '2-error.png'), fullPage: true });

  // 3. The right password: a 303 back to the app with the code.
  await page.waitForTimeout(RETYPE_PAUSE_MS);
  await page.locator('#password').fill(password);
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(redirectUri), { waitUntil: 'load' }),
    page.locator('#submit').click(),
  ]);
  const finalUrl = page.url();
  const posts = documents.filter((d) => d.method === 'POST');
  const last = posts[posts.length - 1];
  check(posts.length === 2, `two form posts were made (${posts.length})`);
  check(last.status === 303 && typeof last.location === 'string' && last.location.startsWith(redirectUri),
    `the second post answered 303 to the redirect URI (${JSON.stringify(last)})`);
  const landed = documents[documents.length - 1];
  check(landed.method === 'GET' && landed.url === finalUrl && landed.status === 200,
    `the browser followed it with GET to the app (${JSON.stringify(landed)})`);
  await page.screenshot({ path: join(shotDir, '3-after.png'), fullPage: true });

  log(`documents: ${JSON.stringify(documents)}`);
  console.log(finalUrl);
} catch (e) {
  log(`FAILED: ${e && e.stack ? e.stack : e}`);
  log(`documents: ${JSON.stringify(documents)}`);
  if (page) {
    try {
      log(`page at failure: ${page.url()}\n${await page.content()}`);
      await page.screenshot({ path: join(shotDir, 'failure.png'), fullPage: true });
    } catch (inner) {
      log(`no failure screenshot: ${inner}`);
    }
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
