// A fake Prometheus HTTP API for tests: a real HTTP server on a loopback port that answers
// GET/POST /api/v1/query with the wire format Prometheus uses (status/data/resultType/result,
// sample values as [unixSeconds, "string"], errors as status "error" + errorType + error with
// 400/422/503). Answers are scripted per query by a matcher; unmatched queries get an empty vector,
// as Prometheus does for a metric it has never seen.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type FakeAnswer =
  | { vector: { metric?: Record<string, string>; value: number | string }[] }
  | { matrix: { metric?: Record<string, string>; values: (number | string)[] }[] }
  | { scalar: number | string }
  | { error: string; errorType?: 'bad_data' | 'timeout' | 'canceled' | 'execution' | 'unavailable'; status?: number }
  | { raw: string; status?: number };

export interface FakeRule {
  match: string | RegExp | ((query: string) => boolean);
  answer: FakeAnswer | ((query: string) => FakeAnswer);
  /** Delay before answering, ms (a slow query). */
  delayMs?: number;
}

export interface FakePrometheus {
  url: string;
  /** Every query received, in order. */
  queries: string[];
  /** Rules are tried last-added first. */
  on(match: FakeRule['match'], answer: FakeRule['answer'], delayMs?: number): void;
  reset(): void;
  close(): Promise<void>;
}

function matches(m: FakeRule['match'], q: string): boolean {
  if (typeof m === 'string') return q.includes(m);
  if (m instanceof RegExp) return m.test(q);
  return m(q);
}

function body(answer: FakeAnswer, now: number): { status: number; text: string } {
  const fmt = (v: number | string) => (typeof v === 'number' ? (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : String(v)) : v);
  if ('raw' in answer) return { status: answer.status ?? 200, text: answer.raw };
  if ('error' in answer) {
    const errorType = answer.errorType ?? 'bad_data';
    const status = answer.status ?? (errorType === 'bad_data' ? 400 : errorType === 'execution' ? 422 : 503);
    return { status, text: JSON.stringify({ status: 'error', errorType, error: answer.error }) };
  }
  let data: unknown;
  if ('vector' in answer) data = { resultType: 'vector', result: answer.vector.map((s) => ({ metric: s.metric ?? {}, value: [now, fmt(s.value)] })) };
  else if ('matrix' in answer)
    data = {
      resultType: 'matrix',
      result: answer.matrix.map((s) => ({ metric: s.metric ?? {}, values: s.values.map((v, i) => [now - (s.values.length - 1 - i) * 15, fmt(v)]) })),
    };
  else data = { resultType: 'scalar', result: [now, fmt(answer.scalar)] };
  return { status: 200, text: JSON.stringify({ status: 'success', data }) };
}

export async function startFakePrometheus(): Promise<FakePrometheus> {
  let rules: FakeRule[] = [];
  const queries: string[] = [];
  const pending = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (url.pathname !== '/api/v1/query') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found\n');
        return;
      }
      const form = req.method === 'POST' ? new URLSearchParams(Buffer.concat(chunks).toString()) : url.searchParams;
      const query = form.get('query');
      if (!query) {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'invalid parameter "query": unknown query' }));
        return;
      }
      queries.push(query);
      const rule = [...rules].reverse().find((r) => matches(r.match, query));
      const answer = rule ? (typeof rule.answer === 'function' ? rule.answer(query) : rule.answer) : { vector: [] };
      const out = body(answer, Date.now() / 1000);
      const send = () => {
        if (!res.destroyed) res.writeHead(out.status, { 'content-type': 'application/json' }).end(out.text);
      };
      if (rule?.delayMs) {
        const t = setTimeout(() => {
          pending.delete(t);
          send();
        }, rule.delayMs);
        pending.add(t);
      } else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    queries,
    on(match, answer, delayMs) {
      rules.push({ match, answer, delayMs });
    },
    reset() {
      rules = [];
      queries.length = 0;
    },
    async close() {
      for (const t of pending) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
