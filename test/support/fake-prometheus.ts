// A fake Prometheus HTTP API for tests: a real HTTP server on a loopback port that answers
// GET/POST /api/v1/query with the wire format Prometheus uses (status/data/resultType/result,
// sample values as [unixSeconds, "string"], errors as status "error" + errorType + error with
// 400/422/503). Answers are scripted per query by a matcher; unmatched queries get an empty vector,
// as Prometheus does for a metric it has never seen. Three operators are evaluated as Prometheus
// does, so that a combined query is answered arm by arm from the same scripts: `a or b` (the union
// by label set, the left side's series first), `label_replace(v, dst, replacement, src, regex)`
// and `vector(<number>)`; everything else is a leaf answered by the rules.
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
  /** Every leaf expression the rules were asked for, in order (a query that is a leaf is one). */
  leaves: string[];
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

type Sample = { metric?: Record<string, string>; value: number | string };

/** Walks `text` outside strings, calling `at(i, depth)` at each character; stops when it returns true. */
function scan(text: string, at: (i: number, depth: number) => boolean): void {
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if ('({['.includes(c)) depth++;
    else if (')}]'.includes(c)) depth--;
    if (at(i, depth)) return;
  }
}

/** `text` split at each top-level match of `sep` (outside brackets and strings). */
function splitTop(text: string, sep: RegExp): string[] {
  const parts: string[] = [];
  let start = 0;
  let skipTo = 0;
  scan(text, (i, depth) => {
    if (depth !== 0 || i < skipTo) return false;
    const m = sep.exec(text.slice(i));
    if (m?.index === 0 && m[0].length > 0) {
      parts.push(text.slice(start, i));
      start = skipTo = i + m[0].length;
    }
    return false;
  });
  parts.push(text.slice(start));
  return parts.map((p) => p.trim());
}

/** The expression without parentheses that enclose all of it. */
function unwrap(expr: string): string {
  let e = expr.trim();
  for (;;) {
    if (!e.startsWith('(')) return e;
    let close = -1;
    scan(e, (i, depth) => depth === 0 && (close = i) >= 0);
    if (close !== e.length - 1) return e;
    e = e.slice(1, -1).trim();
  }
}

const STRING_ARG = /^"((?:[^"\\]|\\.)*)"$/;
const labelsKey = (s: Sample) => JSON.stringify(Object.entries(s.metric ?? {}).sort());

/** Evaluates `or`, label_replace and vector literals as Prometheus does; leaves go to `answerLeaf`. */
function evaluate(expr: string, answerLeaf: (leaf: string) => FakeAnswer): FakeAnswer {
  const e = unwrap(expr);
  const arms = splitTop(e, /^\s+or\s+/);
  if (arms.length > 1) {
    const results = arms.map((a) => evaluate(a, answerLeaf));
    const failed = results.find((r) => 'error' in r || 'raw' in r);
    if (failed) return failed;
    if (results.some((r) => !('vector' in r))) return { error: 'set operator "or" not allowed in binary scalar expression' };
    const seen = new Set<string>();
    const union: Sample[] = [];
    for (const r of results as { vector: Sample[] }[]) {
      union.push(...r.vector.filter((s) => !seen.has(labelsKey(s))));
      r.vector.forEach((s) => seen.add(labelsKey(s)));
    }
    return { vector: union };
  }
  const call = /^label_replace\s*\(([\s\S]*)\)$/.exec(e);
  if (call && unwrap(`(${call[1]!})`) === call[1]!.trim()) {
    const args = splitTop(call[1]!, /^,/);
    const strings = args.slice(1).map((a) => STRING_ARG.exec(a)?.[1]);
    if (args.length !== 5 || strings.some((x) => x === undefined)) return { error: `expected 5 argument(s) in call to "label_replace", got ${args.length}` };
    const [dst, replacement, src, regex] = strings as [string, string, string, string];
    const inner = evaluate(args[0]!, answerLeaf);
    if ('error' in inner || 'raw' in inner) return inner;
    if (!('vector' in inner)) return { error: `expected type instant vector in call to function "label_replace", got ${'scalar' in inner ? 'scalar' : 'range vector'}` };
    const re = new RegExp(`^(?:${regex})$`);
    const out = inner.vector.map((s) => {
      const m = re.exec(s.metric?.[src] ?? '');
      if (!m) return s;
      const value = replacement.replace(/\$(\d+)/g, (_, n: string) => m[Number(n)] ?? '');
      const metric = { ...(s.metric ?? {}) };
      if (value === '') delete metric[dst];
      else metric[dst] = value;
      return { ...s, metric };
    });
    if (new Set(out.map(labelsKey)).size !== out.length) return { error: 'vector cannot contain metrics with the same labelset', errorType: 'execution' };
    return { vector: out };
  }
  const literal = /^vector\s*\(\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*\)$/.exec(e);
  if (literal) return { vector: [{ value: Number(literal[1]) }] };
  return answerLeaf(e);
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
  const leaves: string[] = [];
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
      // The answer waits for the slowest leaf it needed.
      let delayMs = 0;
      const answer = evaluate(query, (leaf) => {
        leaves.push(leaf);
        const rule = [...rules].reverse().find((r) => matches(r.match, leaf));
        delayMs = Math.max(delayMs, rule?.delayMs ?? 0);
        return rule ? (typeof rule.answer === 'function' ? rule.answer(leaf) : rule.answer) : { vector: [] };
      });
      const out = body(answer, Date.now() / 1000);
      const send = () => {
        if (!res.destroyed) res.writeHead(out.status, { 'content-type': 'application/json' }).end(out.text);
      };
      if (delayMs > 0) {
        const t = setTimeout(() => {
          pending.delete(t);
          send();
        }, delayMs);
        pending.add(t);
      } else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    queries,
    leaves,
    on(match, answer, delayMs) {
      rules.push({ match, answer, delayMs });
    },
    reset() {
      rules = [];
      queries.length = 0;
      leaves.length = 0;
    },
    async close() {
      for (const t of pending) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
