// A scripted OpenAI-compatible chat-completions server: real HTTP on a loopback port, the same
// wire format as OpenAI/vLLM (POST {base}/chat/completions, `choices[0].message`, `finish_reason`,
// `usage`, error bodies). It stands in for a model in CI and in the benchmark; it is NOT a model.
// Each request either takes the next scripted fault or is answered by one documented rule that
// reads only the prompt it received (see `ruleAnswer`). A personality (fake-llm-personalities.ts)
// makes it accept and refuse request shapes as vLLM, Ollama, llama.cpp or OpenAI do, with their
// status codes, error bodies, usage fields and reasoning output; the default takes everything.
// With maxConcurrent it serves that many requests at a time, each for serviceMs, and queues the
// rest in arrival order, as a model server with that many batch slots does; a request whose client
// goes away is dropped from the queue, or frees its slot, as vLLM aborts it. `queueing` says how
// long requests waited for a slot.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PERSONALITIES, type Personality, type PersonalityName, type RequestView } from './fake-llm-personalities.js';

export { PERSONALITIES, type PersonalityName } from './fake-llm-personalities.js';

export type FakeLlmFault =
  | 'timeout' // never answers (until the server closes)
  | '429'
  | '500'
  | 'malformed' // content that is not JSON
  | 'outside-enum' // an action id that is not a candidate
  | 'truncated' // cut-off JSON with finish_reason "length"
  | 'refusal' // message.refusal set, content null
  | 'empty' // content ""
  | 'no-choices' // choices: []
  | 'prose' // valid answer inside prose and a code fence (a server that ignores response_format)
  | '503' // overloaded, in the personality's error body
  | 'think' // a <think> block before the answer, in the content
  | 'think-unclosed' // the content ends inside a <think> block
  | { kind: '429'; retryAfter: string }; // 429 with this Retry-After (seconds or an HTTP date)

export interface FakeLlmRequest {
  body: {
    model: string;
    messages: { role: string; content: string }[];
    temperature?: number;
    max_tokens?: number;
    max_completion_tokens?: number;
    response_format?: { type: string; json_schema?: { schema: { properties: { action: { enum: string[] } } } } };
  };
  /** The personality refused it (status), or null when it was answered or faulted. */
  refused: number | null;
  headers: IncomingMessage['headers'];
}

export interface FakeLlm {
  /** Base URL for the openai client, e.g. http://127.0.0.1:PORT/v1. */
  url: string;
  requests: FakeLlmRequest[];
  /** Faults to serve, in order, before answering by the rule again. */
  script(...faults: FakeLlmFault[]): void;
  /** With maxConcurrent: each request's wait for a slot, ms, in arrival order, and the longest queue seen. */
  queueing: { waitsMs: number[]; maxQueued: number };
  close(): Promise<void>;
}

interface Parsed {
  candidates: string[];
  stats: Map<string, { n: number; mean: number }>;
  /** The same per action, counted from the EXPERIENCES rows themselves. */
  rows: Map<string, { n: number; mean: number }>;
  bottleneck: number | null;
  p99Ratio: number | null;
  pressure: Map<number, number>;
  replicas: Map<number, number>;
}

/** Reads the sections that src/policy/prompt.ts writes: STATE, STATISTICS, EXPERIENCES and CANDIDATES. */
export function parsePrompt(user: string): Parsed {
  const out: Parsed = { candidates: [], stats: new Map(), rows: new Map(), bottleneck: null, p99Ratio: null, pressure: new Map(), replicas: new Map() };
  let section = '';
  for (const line of user.split('\n')) {
    if (/^[A-Z]+( |$)/.test(line)) {
      section = line.split(' ')[0]!;
      continue;
    }
    if (section === 'STATE') {
      const p99 = /^p99\/slo: ([\d.]+)/.exec(line);
      if (p99) out.p99Ratio = Number(p99[1]);
      const bn = /^bottleneck: stage (\d+)/.exec(line);
      if (bn) out.bottleneck = Number(bn[1]);
      const st = /^stage (\d+): replicas (\d+) .*load\/capacity ([\d.]+)/.exec(line);
      if (st) {
        out.replicas.set(Number(st[1]), Number(st[2]));
        out.pressure.set(Number(st[1]), Number(st[3]));
      }
    } else if (section === 'STATISTICS') {
      const row = /^(\S+) \| ([\d.]+) \| ([+-][\d.]+) \|/.exec(line);
      if (row) out.stats.set(row[1]!, { n: Number(row[2]), mean: Number(row[3]) });
    } else if (section === 'EXPERIENCES') {
      const row = /^\[[^\]]*\] (\S+) -> ([+-]?\d)/.exec(line);
      if (row) {
        const s = out.rows.get(row[1]!) ?? { n: 0, mean: 0 };
        out.rows.set(row[1]!, { n: s.n + 1, mean: (s.mean * s.n + Number(row[2])) / (s.n + 1) });
      }
    } else if (section === 'CANDIDATES') {
      const c = /^(\S+): /.exec(line);
      if (c) out.candidates.push(c[1]!);
    }
  }
  return out;
}

/**
 * The rule, in order (its statistics are counted from the EXPERIENCES rows when there are any, as a
 * model reading them would; from the STATISTICS table otherwise):
 *  1. a candidate with n >= 2 and mean reward >= 0.2: the highest mean;
 *  2. if p99/slo > 0.9 or the bottleneck's load/capacity > 0.85: the smallest replica scale-up of
 *     the bottleneck stage that brings its load/capacity to 0.7 or below (else the largest one);
 *  3. if p99/slo < 0.7: a one-replica scale-down of the stage with the lowest load/capacity, if it
 *     stays under 0.6 afterwards;
 *  4. hold.
 * Steps 2 and 3 skip candidates whose statistics show mean < -0.3 over n >= 2.
 */
export function ruleAnswer(user: string): { action: string; reason: string; bottleneck: number | null } {
  const p = parsePrompt(user);
  const stats = p.rows.size > 0 ? p.rows : p.stats;
  const bad = (id: string) => {
    const s = stats.get(id);
    return s !== undefined && s.n >= 2 && s.mean < -0.3;
  };
  let best: string | null = null;
  let bestMean = 0.2;
  for (const id of p.candidates) {
    const s = stats.get(id);
    if (s && s.n >= 2 && s.mean >= bestMean) {
      best = id;
      bestMean = s.mean;
    }
  }
  if (best) return { action: best, reason: `best mean reward ${bestMean.toFixed(2)} in similar states`, bottleneck: p.bottleneck };
  const b = p.bottleneck;
  if (b !== null && ((p.p99Ratio ?? 0) > 0.9 || (p.pressure.get(b) ?? 0) > 0.85)) {
    const r = p.replicas.get(b) ?? 1;
    const load = p.pressure.get(b) ?? 1;
    const ups = p.candidates
      .map((id) => ({ id, k: new RegExp(`^s${b}\\+(\\d+)$`).exec(id)?.[1] }))
      .filter((c): c is { id: string; k: string } => c.k !== undefined && !bad(c.id))
      .map((c) => ({ id: c.id, k: Number(c.k) }))
      .sort((x, y) => x.k - y.k);
    const fit = ups.find((c) => (load * r) / (r + c.k) <= 0.7) ?? ups[ups.length - 1];
    if (fit) return { action: fit.id, reason: `stage ${b} is the bottleneck; add capacity`, bottleneck: b };
  }
  if ((p.p99Ratio ?? 1) < 0.7) {
    const coldest = [...p.pressure.entries()]
      .filter(([i, load]) => p.candidates.includes(`s${i}-1`) && !bad(`s${i}-1`) && (load * (p.replicas.get(i) ?? 1)) / Math.max((p.replicas.get(i) ?? 1) - 1, 1) < 0.6)
      .sort((x, y) => x[1] - y[1])[0];
    if (coldest) return { action: `s${coldest[0]}-1`, reason: `stage ${coldest[0]} is underused`, bottleneck: b };
  }
  return { action: 'hold', reason: 'nothing to change', bottleneck: b };
}

interface CompletionExtra {
  finish_reason?: string;
  refusal?: string | null;
  choices?: unknown[];
  /** Message fields beyond role and content (reasoning_content, reasoning). */
  message?: Record<string, unknown>;
}

function completion(p: Personality, n: number, content: string | null, extra: CompletionExtra = {}) {
  return {
    id: `chatcmpl-fake-${Date.now()}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: 'fake-scripted',
    choices: extra.choices ?? [
      {
        index: 0,
        message: { role: 'assistant', content, refusal: extra.refusal ?? null, ...extra.message },
        finish_reason: extra.finish_reason ?? 'stop',
        logprobs: null,
      },
    ],
    usage: p.usage(100, content ? Math.ceil(content.length / 4) : 0, n),
  };
}

const THOUGHT = 'The bottleneck is the stage with the highest load/capacity; adding capacity there lowers P99.';

function viewOf(body: FakeLlmRequest['body']): RequestView {
  return {
    responseFormat: body.response_format?.type ?? null,
    hasMaxTokens: body.max_tokens !== undefined,
    hasMaxCompletionTokens: body.max_completion_tokens !== undefined,
    temperature: body.temperature,
  };
}

export interface FakeLlmOptions {
  /** Which real server's behaviour to follow (default: `scripted`, which takes every shape). */
  personality?: PersonalityName;
  /** The scripted model reasons before it answers, where the personality puts reasoning. */
  reasoning?: boolean;
  /** Requests served at the same time at most; the rest wait in arrival order. */
  maxConcurrent?: number;
  /** How long a request holds its slot before it is answered, ms (with maxConcurrent). */
  serviceMs?: number;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

export async function startFakeLlm(opts: FakeLlmOptions = {}): Promise<FakeLlm> {
  const p: Personality = PERSONALITIES[opts.personality ?? 'scripted'];
  const requests: FakeLlmRequest[] = [];
  const queue: FakeLlmFault[] = [];
  let answered = 0;
  const queueing = { waitsMs: [] as number[], maxQueued: 0 };
  const waiting: (() => void)[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let active = 0;
  /** Runs `handle` once a slot is free and after the service time; at once without a cap. */
  const admit = (res: ServerResponse, handle: () => void) => {
    if (!opts.maxConcurrent) return handle();
    const arrived = Date.now();
    const run = () => {
      active++;
      queueing.waitsMs.push(Date.now() - arrived);
      let done = false;
      const finish = (answer: boolean) => {
        if (done) return;
        done = true;
        clearTimeout(t);
        timers.delete(t);
        active--;
        if (answer) handle();
        waiting.shift()?.();
      };
      const t = setTimeout(() => finish(true), opts.serviceMs ?? 0);
      timers.add(t);
      res.once('close', () => finish(false));
    };
    if (active < opts.maxConcurrent) return run();
    waiting.push(run);
    queueing.maxQueued = Math.max(queueing.maxQueued, waiting.length);
    res.once('close', () => {
      const at = waiting.indexOf(run);
      if (at >= 0) waiting.splice(at, 1);
    });
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => admit(res, () => {
      if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
        send(res, 404, p.error(404, `no route ${req.method} ${req.url}`));
        return;
      }
      let body: FakeLlmRequest['body'];
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as FakeLlmRequest['body'];
      } catch {
        send(res, 400, p.error(400, 'request body is not JSON'));
        return;
      }
      const refused = p.refuse(viewOf(body));
      requests.push({ body, headers: req.headers, refused: refused?.status ?? null });
      if (refused) return send(res, refused.status, refused.body, refused.headers);
      const n = ++answered;
      const user = body.messages.find((m) => m.role === 'user')?.content ?? '';
      const answer = ruleAnswer(user);
      const json = JSON.stringify(answer);
      const fault = queue.shift();
      if (typeof fault === 'object') return send(res, 429, p.error(429, 'Rate limit reached for requests'), { ...p.rateLimitHeaders, 'retry-after': fault.retryAfter });
      switch (fault) {
        case 'timeout':
          return; // the client's timeout or the server's close ends it
        case '429':
          return send(res, 429, p.error(429, 'Rate limit reached for requests', { code: 'rate_limit_exceeded' }), p.rateLimitHeaders);
        case '500':
          return send(res, 500, p.error(500, 'internal server error'));
        case '503':
          return send(res, 503, p.error(503, 'server busy, please try again later'));
        case 'malformed':
          return send(res, 200, completion(p, n, `{action: ${answer.action}, reason: oops`));
        case 'outside-enum':
          return send(res, 200, completion(p, n, JSON.stringify({ action: 's99+7', reason: 'made up', bottleneck: 99 })));
        case 'truncated':
          return send(res, 200, completion(p, n, json.slice(0, 12), { finish_reason: 'length' }));
        case 'refusal':
          return send(res, 200, completion(p, n, null, { refusal: 'I cannot help with that.' }));
        case 'empty':
          return send(res, 200, completion(p, n, ''));
        case 'no-choices':
          return send(res, 200, completion(p, n, null, { choices: [] }));
        case 'prose':
          return send(res, 200, completion(p, n, `Sure. Here is my decision:\n\`\`\`json\n${json}\n\`\`\`\nHope this helps.`));
        case 'think':
          return send(res, 200, completion(p, n, `<think>\n${THOUGHT} {"action": "hold"} would be wrong.\n</think>\n\n${json}`));
        case 'think-unclosed':
          return send(res, 200, completion(p, n, `<think>\n${THOUGHT}`));
        default:
          break;
      }
      // A server that drops response_format lets the model answer as it likes.
      const free = p.ignoresSchema && body.response_format?.type === 'json_schema';
      const content = free ? `Decision: ${json}` : json;
      if (!opts.reasoning || p.reasoning === 'none') return send(res, 200, completion(p, n, content));
      if (p.reasoning === 'content-think') return send(res, 200, completion(p, n, `<think>\n${THOUGHT}\n</think>\n\n${content}`));
      return send(res, 200, completion(p, n, content, { message: { [p.reasoning]: THOUGHT } }));
    }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    script: (...faults) => void queue.push(...faults),
    queueing,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
