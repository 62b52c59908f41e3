// Drives Castellan's admin console in Debian's Chromium.
//
//   node console.mjs <issuer> <admin> <password> <person> <outsider> <screenshot-dir> <admin-user-id>
//
// Signs <admin> in at <issuer>/admin through the authority's own login page,
// rotates the signing keys (through the confirmation page) and checks the
// key timeline changed, suspends <person> and checks their sessions are gone,
// rolls the `orders` policies back to version 1, opens the audit trail
// filtered to the admin (`user:<admin-user-id>`) and checks the three actions
// are there and the chain verifies intact, visits every other page,
// uses the keyboard (skip link, focus), signs out, and finally checks that
// <outsider> (a person who is not a console admin) is refused. Screenshots
// of every page go to <screenshot-dir>. On success the last line on stdout
// is a JSON object with what the Rust side checks next; progress goes to
// stderr. Exit code 0 only if every check passed. Driven by
// crates/castellan-cli/tests/console_browser.rs.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const CHROMIUM = '/usr/bin/chromium';
const [issuer, admin, password, person, outsider, shotDir, adminId] = process.argv.slice(2);
if (!issuer || !admin || !password || !person || !outsider || !shotDir || !adminId) {
  console.error('usage: node console.mjs <issuer> <admin> <password> <person> <outsider> <screenshot-dir> <admin-user-id>');
  process.exit(64);
}
mkdirSync(shotDir, { recursive: true });

const log = (msg) => console.error(`console.mjs: ${msg}`);
function check(ok, msg) {
  if (!ok) throw new Error(`check failed: ${msg}`);
  log(`ok: ${msg}`);
}

const cspViolations = [];
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
let page;
let n = 0;
async function shot(name) {
  n += 1;
  const file = `${String(n).padStart(2, '0')}-${name}.png`;
  await page.screenshot({ path: join(shotDir, file), fullPage: true });
  log(`screenshot ${file}`);
}

async function signIn(username) {
  await page.goto(`${issuer}/admin`);
  check(new URL(page.url()).pathname === '/oauth2/authorize', `/admin without a session shows the login page (${page.url()})`);
  await page.locator('#username').fill(username);
  await page.locator('#password').fill(password);
  await Promise.all([page.waitForLoadState('load'), page.locator('#submit').click()]);
  await page.waitForLoadState('load');
}

// Submits the form of `button` and waits for the next page.
async function submit(button) {
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.locator(button).click()]);
}

async function confirmWith(button) {
  await submit(button);
  check(await page.locator('#confirm').isVisible(), 'a confirmation page asks first');
  check((await page.locator('input[name=confirm][value=yes]').count()) === 1, 'the confirmation posts confirm=yes (works without JavaScript)');
}

const result = {};
try {
  // A laptop screen.
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  context.setDefaultTimeout(20_000);
  context.setDefaultNavigationTimeout(30_000);
  page = await context.newPage();
  page.on('console', (m) => {
    log(`console.${m.type()}: ${m.text()}`);
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on('pageerror', (e) => log(`page error: ${e}`));

  // 1. Sign in as the admin: the authority's own login page, then the overview.
  await page.goto(`${issuer}/admin`);
  check(new URL(page.url()).pathname === '/oauth2/authorize', 'the console sends the browser to the authorization endpoint');
  check((await page.locator('.app').innerText()).includes('Castellan admin console'), 'the login page names the console');
  await shot('login');
  await page.locator('#username').fill(admin);
  await page.locator('#password').fill(password);
  await submit('#submit');
  check(new URL(page.url()).pathname === '/admin', `signed in, at /admin (${page.url()})`);
  check(await page.locator('h1', { hasText: 'Overview' }).isVisible(), 'the overview is shown');
  check(await page.locator('#stage').isVisible(), 'the stage assessment is shown');
  check((await page.locator('#who').innerText()).includes(admin), 'the page says who is signed in');
  const cookies = await context.cookies(`${issuer}/admin`);
  const session = cookies.find((c) => c.name === 'castellan_console');
  check(session && session.httpOnly && session.sameSite === 'Lax' && session.path === '/admin',
    'the console session cookie is HttpOnly, SameSite=Lax, Path=/admin');
  await shot('overview');

  // Keyboard: the first Tab reaches the skip link, Enter moves focus to the content.
  await page.keyboard.press('Tab');
  check((await page.evaluate(() => document.activeElement && document.activeElement.textContent)) === 'Skip to content',
    'the first Tab focuses the skip link');
  await page.keyboard.press('Enter');
  check((await page.evaluate(() => document.activeElement && document.activeElement.id)) === 'main',
    'the skip link moves focus to the main content');
  // Tab into the navigation and follow a link with Enter.
  const keysLink = page.locator('nav a', { hasText: 'Keys' });
  await keysLink.focus();
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
  check(new URL(page.url()).pathname === '/admin/keys', 'Enter on a focused navigation link opens the keys page');

  // 2. Keys: rotate with confirmation, the timeline changes.
  const activeBefore = await page.locator('#key-timeline tr[data-state=active]').getAttribute('data-kid');
  const nextBefore = await page.locator('#key-timeline tr[data-state=next]').getAttribute('data-kid');
  check(!!activeBefore && !!nextBefore, `the timeline shows an active (${activeBefore}) and a next (${nextBefore}) key`);
  await shot('keys');
  await confirmWith('#rotate');
  await shot('keys-confirm');
  await submit('#confirm');
  check(new URL(page.url()).pathname === '/admin/keys', 'back on the keys page');
  check(await page.locator('#notice').isVisible(), 'the page says the keys rotated');
  const activeAfter = await page.locator('#key-timeline tr[data-state=active]').getAttribute('data-kid');
  check(activeAfter === nextBefore, `the next key (${nextBefore}) is active now (${activeAfter})`);
  check((await page.locator(`#key-timeline tr[data-kid="${activeBefore}"]`).getAttribute('data-state')) === 'retired',
    `the previous key ${activeBefore} is retired`);
  check((await page.locator('#key-timeline tr[data-state=next]').count()) === 1, 'a new next key is published');
  await shot('keys-rotated');
  result.retired = activeBefore;
  result.active = activeAfter;

  // 3. People: suspend the person, their sessions end.
  await submit('nav a:has-text("People")');
  await shot('people');
  await submit(`#people a:has-text("${person}")`);
  const before = await page.locator('#sessions tbody tr').count();
  check(before >= 1, `${person} holds ${before} live session(s)`);
  await shot('person');
  await confirmWith('#suspend');
  await shot('person-confirm');
  await submit('#confirm');
  check((await page.locator('#status').innerText()).trim() === 'suspended', `${person} is suspended`);
  check(await page.locator('#no-sessions').isVisible(), `${person} has no live session left`);
  check(await page.locator('#resume').isVisible(), 'a resume button is offered');
  await shot('person-suspended');
  result.sessions_before = before;

  // 4. Policies: roll back to version 1.
  await submit('nav a:has-text("Policies")');
  await shot('policies');
  await submit('#services a:has-text("orders")');
  const current = (await page.locator('#current-version').innerText()).trim();
  check(current === '2', `version 2 is in force (${current})`);
  check((await page.locator('#diff .add').count()) > 0, 'the diff from 1 to 2 shows added lines');
  await shot('policy');
  await confirmWith('#rollback-1');
  await shot('policy-confirm');
  await submit('#confirm');
  const now = (await page.locator('#current-version').innerText()).trim();
  check(now === '3', `the rollback is in force as version 3 (${now})`);
  check((await page.locator('#versions tr[data-version="3"]').innerText()).includes('rollback to 1'),
    'version 3 is noted as a rollback to 1');
  await shot('policy-rolled-back');

  // 5. The audit trail: the three actions, by this admin, and an intact chain.
  await submit('nav a:has-text("Audit trail")');
  check(await page.locator('h1', { hasText: 'Audit trail' }).isVisible(), 'the audit trail page renders');
  const actor = `user:${adminId}`;
  await page.locator('#actor').fill(actor);
  await page.locator('button', { hasText: 'Filter' }).click();
  await page.waitForURL((u) => u.searchParams.get('actor') === actor);
  await page.locator('#audit').waitFor();
  const rows = await page.$$eval('#audit tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.innerText.trim())));
  for (const action of ['key.rotate', 'user.suspend', 'policy.rollback']) {
    check(rows.some((r) => r[2] === actor && r[3] === action && r[5] === 'success'),
      `the audit trail shows ${action} by ${actor}`);
  }
  check(rows.every((r) => r[2] === actor), `the actor filter shows only ${actor}`);
  await shot('audit-filtered');
  await submit('#verify-chain');
  const chain = (await page.locator('#chain-result').innerText()).trim();
  check(chain.includes('intact'), `the audit chain verifies intact (${chain})`);
  await shot('audit-chain-verified');
  result.audit_actions = rows.map((r) => r[3]);

  // 6. The other pages render.
  for (const [label, heading] of [
    ['Verifiers', 'Verifiers'],
    ['Clients', 'Clients and workloads'],
    ['Decisions', 'Decisions'],
    ['Probe reports', 'Probe reports'],
    ['Audit trail', 'Audit trail'],
  ]) {
    await submit(`nav a:has-text("${label}")`);
    check(await page.locator('h1', { hasText: heading }).isVisible(), `the ${label} page renders`);
    await shot(label.toLowerCase().replace(/ /g, '-'));
  }
  // The decision filter (htmx swaps the results in; the URL follows).
  await submit('nav a:has-text("Decisions")');
  await page.locator('#service').selectOption('orders');
  await page.locator('#decision').selectOption('deny');
  await page.locator('button', { hasText: 'Filter' }).click();
  await page.waitForURL((u) => u.searchParams.get('service') === 'orders' && u.searchParams.get('decision') === 'deny');
  await page.locator('#results').waitFor();
  check((await page.locator('#results').innerText()).includes('No decisions match'), 'the decision filter answers');
  await shot('decisions-filtered');

  // A visible focus style on a focused button.
  await page.locator('#signout').focus();
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  check(outline !== 'none', `a focused button shows an outline (${outline})`);

  // 7. Sign out.
  await submit('#signout');
  check((await page.locator('h1').innerText()).trim() === 'Signed out', 'signed out');
  await shot('signed-out');
  await page.goto(`${issuer}/admin/keys`);
  check(new URL(page.url()).pathname === '/oauth2/authorize', 'after sign-out the console asks to sign in again');

  // 8. Someone who is not a console admin is refused.
  await page.locator('#username').fill(outsider);
  await page.locator('#password').fill(password);
  await submit('#submit');
  check((await page.locator('h1').innerText()).trim() === 'Not a console admin', `${outsider} is refused`);
  await shot('outsider-refused');

  check(cspViolations.length === 0, `no Content-Security-Policy violations (${cspViolations.join(' | ')})`);
  console.log(JSON.stringify(result));
} catch (e) {
  log(`FAILED: ${e && e.stack ? e.stack : e}`);
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
