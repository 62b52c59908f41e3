// Test-only upstream OpenID Connect provider for Castellan's federation tests.
//
// Wraps the real `oidc-provider` npm package (pinned in package.json) with:
//   * one confidential client (client_secret_basic, authorization_code, code, PKCE S256 required),
//   * one account (--user-sub / --user-password),
//   * a generated signing key (ES256 by default, RS256 with --id-token-alg RS256),
//   * minimal, JavaScript-free interaction routes (a plain HTML login form; consent is granted
//     automatically), so a non-JS HTTP client that keeps cookies can complete sign-in.
//
// Usage:
//   node provider.mjs --port 0 --client-id ID --client-secret SECRET \
//     --redirect-uri URI --user-sub SUB --user-password PW \
//     [--id-token-alg ES256|RS256] [--watch-stdin]
//
// Prints exactly one line to stdout once ready:  LISTENING http://127.0.0.1:<port>
// Everything else (oidc-provider notices, request log, errors) goes to stderr.
// See README.md for the exact request sequence.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

// oidc-provider prints its "NOTICE" lines with console.info (stdout). stdout is reserved for the
// single LISTENING line, so route every console method to stderr before the library is loaded.
for (const method of ['log', 'info', 'debug', 'warn']) {
  console[method] = (...args) => console.error(...args);
}

function fail(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      'user-sub': { type: 'string' },
      'user-password': { type: 'string' },
      'id-token-alg': { type: 'string', default: 'ES256' },
      'watch-stdin': { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (err) {
  fail(err.message);
}

for (const required of ['client-id', 'client-secret', 'redirect-uri', 'user-sub', 'user-password']) {
  if (args[required] === undefined || args[required].length === 0) {
    fail(`missing required option --${required}`);
  }
}
const port = Number.parseInt(args.port, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535 || String(port) !== args.port.trim()) {
  fail(`invalid --port ${JSON.stringify(args.port)}`);
}
const alg = args['id-token-alg'];
if (alg !== 'ES256' && alg !== 'RS256') {
  fail(`--id-token-alg must be ES256 or RS256, got ${JSON.stringify(alg)}`);
}

const CLIENT_ID = args['client-id'];
const CLIENT_SECRET = args['client-secret'];
const REDIRECT_URIS = args['redirect-uri'];
const USER_SUB = args['user-sub'];
const USER_PASSWORD = args['user-password'];

const { default: Provider, errors: oidcErrors } = await import('oidc-provider');

// ---------------------------------------------------------------------------------------------
// Signing key, generated fresh for every run.
function generateSigningJwk() {
  const { privateKey } = alg === 'ES256'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `upstream-${alg.toLowerCase()}-${crypto.randomBytes(6).toString('hex')}`, alg, use: 'sig' };
}

// ---------------------------------------------------------------------------------------------
// Account model: exactly one account.
function accountClaims() {
  return {
    sub: USER_SUB,
    preferred_username: USER_SUB,
    email: `${USER_SUB}@example.com`,
  };
}

async function findAccount(ctx, sub) {
  if (sub !== USER_SUB) {
    return undefined;
  }
  return {
    accountId: USER_SUB,
    async claims() {
      return accountClaims();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Start listening first so that the issuer can carry the real (possibly ephemeral) port.
const server = http.createServer();
server.on('clientError', (err, socket) => {
  socket.destroy(err);
});

try {
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
} catch (err) {
  fail(`cannot listen on 127.0.0.1:${port}: ${err.message}`);
}
const ISSUER = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(ISSUER, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: REDIRECT_URIS,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: alg,
    },
  ],
  jwks: { keys: [generateSigningJwk()] },
  cookies: {
    keys: [crypto.randomBytes(32).toString('base64url')],
  },
  findAccount,
  // `profile` also carries `email` so that an RP asking only for "openid profile" still sees it.
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'email'],
    email: ['email'],
  },
  scopes: ['openid', 'profile', 'email'],
  responseTypes: ['code'],
  // Put the scope-granted claims into the ID Token too (not only into the userinfo response).
  conformIdTokenClaims: false,
  pkce: { methods: ['S256'], required: () => true },
  clientAuthMethods: ['client_secret_basic'],
  interactions: {
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  features: {
    devInteractions: { enabled: false },
    dPoP: { enabled: false },
    pushedAuthorizationRequests: { enabled: false },
    resourceIndicators: { enabled: false },
    rpInitiatedLogout: { enabled: false },
    userinfo: { enabled: true },
  },
  // Dev-only provider: show the real error description instead of the generic HTML error page.
  async renderError(ctx, out) {
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = `${Object.entries(out).map(([k, v]) => `${k}: ${v}`).join('\n')}\n`;
  },
});

provider.on('server_error', (ctx, err) => {
  process.stderr.write(`provider.mjs: server_error on ${ctx.method} ${ctx.path}: ${err.stack || err}\n`);
});
for (const event of ['authorization.error', 'grant.error', 'userinfo.error', 'jwks.error', 'discovery.error']) {
  provider.on(event, (ctx, err) => {
    process.stderr.write(`provider.mjs: ${event} on ${ctx.method} ${ctx.path}: ${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}\n`);
  });
}

// ---------------------------------------------------------------------------------------------
// Interaction routes (no JavaScript, no consent screen).
const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

function loginPage(uid, clientId, error) {
  const errorHtml = error ? `<p class="error">${escapeHtml(error)}</p>\n` : '';
  return `<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Upstream sign-in</title></head>
<body>
<h1>Upstream sign-in</h1>
<p>Signing in to ${escapeHtml(clientId)}</p>
${errorHtml}<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<input type="text" name="login" autocomplete="username">
<input type="password" name="password" autocomplete="current-password">
<button type="submit">Sign in</button>
</form>
</body>
</html>
`;
}

function send(res, status, contentType, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) {
      throw Object.assign(new Error('request body too large'), { status: 413 });
    }
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function grantFor(details, accountId) {
  const clientId = details.params.client_id;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId });
  grant.addOIDCScope(String(details.params.scope || 'openid'));
  return grant.save();
}

async function finishWithGrant(req, res, details, accountId, login) {
  const grantId = await grantFor(details, accountId);
  const result = { consent: { grantId } };
  if (login) {
    result.login = { accountId };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

async function handleInteraction(req, res, url) {
  const match = /^\/interaction\/([A-Za-z0-9_-]+)(\/login|\/abort)?$/.exec(url.pathname);
  if (!match) {
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    return;
  }
  const [, uid, action] = match;

  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    if (err instanceof oidcErrors.SessionNotFound) {
      send(res, 400, 'text/plain; charset=utf-8', `interaction session not found: ${err.error_description || err.message}\n`);
      return;
    }
    throw err;
  }
  if (details.uid !== uid) {
    send(res, 400, 'text/plain; charset=utf-8', 'interaction cookie does not match the URL\n');
    return;
  }

  const promptName = details.prompt.name;

  if (req.method === 'GET' && action === undefined) {
    if (promptName === 'consent') {
      // Already signed in upstream, only consent is missing: grant it without a screen.
      await finishWithGrant(req, res, details, details.session.accountId, false);
      return;
    }
    send(res, 200, 'text/html; charset=utf-8', loginPage(uid, details.params.client_id));
    return;
  }

  if (req.method === 'POST' && action === '/login') {
    const form = await readForm(req);
    const login = form.get('login') ?? '';
    const password = form.get('password') ?? '';
    const ok = login === USER_SUB
      && crypto.timingSafeEqual(
        crypto.createHash('sha256').update(password).digest(),
        crypto.createHash('sha256').update(USER_PASSWORD).digest(),
      );
    if (!ok) {
      send(res, 401, 'text/html; charset=utf-8', loginPage(uid, details.params.client_id, 'Invalid login or password.'));
      return;
    }
    await finishWithGrant(req, res, details, USER_SUB, true);
    return;
  }

  if (req.method === 'POST' && action === '/abort') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }

  res.setHeader('Allow', action === undefined ? 'GET' : 'POST');
  send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
}

const providerCallback = provider.callback();

server.on('request', (req, res) => {
  const started = Date.now();
  res.on('finish', () => {
    const location = res.getHeader('location');
    process.stderr.write(`provider.mjs: ${req.method} ${req.url.split('?')[0]} -> ${res.statusCode}${location ? ` (Location: ${String(location).split('?')[0]})` : ''} ${Date.now() - started}ms\n`);
  });

  const url = new URL(req.url, ISSUER);
  if (url.pathname === '/interaction' || url.pathname.startsWith('/interaction/')) {
    handleInteraction(req, res, url).catch((err) => {
      process.stderr.write(`provider.mjs: interaction error: ${err.stack || err}\n`);
      if (!res.headersSent) {
        send(res, err.status || 500, 'text/plain; charset=utf-8', `interaction error: ${err.message}\n`);
      } else {
        res.destroy();
      }
    });
    return;
  }
  providerCallback(req, res);
});

function shutdown(signal) {
  process.stderr.write(`provider.mjs: ${signal}, shutting down\n`);
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
if (args['watch-stdin']) {
  // Exit when the parent closes our stdin (or dies), so a crashed test leaves nothing behind.
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}

process.stdout.write(`LISTENING ${ISSUER}\n`);
