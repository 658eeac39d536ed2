// A small client for Prometheus's HTTP API (GET /api/v1/query): one instant query, one number.
// Every failure (timeout, HTTP error, `status: "error"`, an unexpected shape) is an UpstreamError;
// the metrics port turns it into a missing value, so the controller holds. At most maxConcurrent
// queries are in flight (Prometheus itself runs 20 at a time by default, --query.max-concurrency);
// the rest wait their turn instead of opening a connection each.
import { z } from 'zod';
import { UpstreamError, errorMessage } from '../../common/errors.js';

const sampleValue = z.tuple([z.number(), z.string()]);
const responseSchema = z.discriminatedUnion('status', [
  z.object({
    status: z.literal('success'),
    data: z.discriminatedUnion('resultType', [
      z.object({ resultType: z.literal('vector'), result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: sampleValue })) }),
      z.object({ resultType: z.literal('matrix'), result: z.array(z.object({ metric: z.record(z.string(), z.string()), values: z.array(sampleValue) })) }),
      z.object({ resultType: z.literal('scalar'), result: sampleValue }),
      z.object({ resultType: z.literal('string'), result: sampleValue }),
    ]),
    warnings: z.array(z.string()).optional(),
  }),
  z.object({ status: z.literal('error'), errorType: z.string(), error: z.string() }),
]);

/** Prometheus writes sample values as strings, with infinities as "+Inf" and "-Inf". */
function sampleNumber(s: string): number {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return Number(s);
}

export interface Series {
  metric: Record<string, string>;
  /** The instant value, or the latest point of a range. NaN and ±Inf are kept as numbers. */
  value: number;
}

export interface PrometheusClientOptions {
  /** Base URL, e.g. http://prometheus.monitoring:9090 (a path prefix is kept). */
  url: string;
  timeoutMs: number;
  /** Sent as `Authorization` when set (a bearer token for a managed Prometheus). */
  authorization?: string;
  /** Queries in flight at most; the timeout counts from when a query is sent. Default: no limit. */
  maxConcurrent?: number;
}

export class PrometheusClient {
  private readonly endpoint: URL;
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly options: PrometheusClientOptions) {
    const base = options.url.endsWith('/') ? options.url : `${options.url}/`;
    this.endpoint = new URL('api/v1/query', base);
  }

  /** Run an instant query; resolves to its series (one for a scalar). */
  async query(promql: string, time?: Date): Promise<Series[]> {
    const limit = this.options.maxConcurrent ?? Infinity;
    if (this.active >= limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await this.send(promql, time);
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }

  private async send(promql: string, time?: Date): Promise<Series[]> {
    const body = new URLSearchParams({ query: promql, timeout: `${Math.max(1, Math.floor(this.options.timeoutMs / 1000))}s` });
    if (time) body.set('time', (time.getTime() / 1000).toFixed(3));
    let res: Response;
    let text: string;
    // A timer cleared once the answer is read: AbortSignal.timeout would keep one alive, and fire
    // an abort, long after each of the many quick queries.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new DOMException(`query timed out after ${this.options.timeoutMs} ms`, 'TimeoutError')), this.options.timeoutMs);
    try {
      res = await fetch(this.endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          ...(this.options.authorization ? { authorization: this.options.authorization } : {}),
        },
        body,
        signal: abort.signal,
      });
      text = await res.text().catch(() => '');
    } catch (err) {
      // Checked by name: the abort error may come from another realm (a VM context), so not instanceof.
      const name = (err as { name?: unknown }).name;
      const timedOut = name === 'TimeoutError' || name === 'AbortError';
      throw new UpstreamError('prometheus', timedOut ? `query timed out after ${this.options.timeoutMs} ms` : `request failed: ${errorMessage(err)}`, undefined, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new UpstreamError('prometheus', `HTTP ${res.status}: not a Prometheus API response: ${text.slice(0, 200)}`, res.status);
    }
    const parsed = responseSchema.safeParse(json);
    if (!parsed.success) throw new UpstreamError('prometheus', `HTTP ${res.status}: unexpected response shape: ${text.slice(0, 200)}`, res.status);
    const out = parsed.data;
    if (out.status === 'error') throw new UpstreamError('prometheus', `${out.errorType}: ${out.error}`, res.status);
    const data = out.data;
    switch (data.resultType) {
      case 'vector':
        return data.result.map((s) => ({ metric: s.metric, value: sampleNumber(s.value[1]) }));
      case 'matrix':
        return data.result.filter((s) => s.values.length > 0).map((s) => ({ metric: s.metric, value: sampleNumber(s.values[s.values.length - 1]![1]) }));
      case 'scalar':
        return [{ metric: {}, value: sampleNumber(data.result[1]) }];
      case 'string':
        throw new UpstreamError('prometheus', `query returned a string, not a number: ${promql}`);
    }
  }

  /**
   * One number from a query that aggregates to a single series; null when there is no data
   * (empty result, NaN). Several series are an error in the query, reported as such.
   */
  async value(promql: string, time?: Date): Promise<number | null> {
    const series = await this.query(promql, time);
    if (series.length === 0) return null;
    if (series.length > 1) {
      throw new UpstreamError('prometheus', `query returned ${series.length} series; aggregate it to one (e.g. sum(...)): ${promql}`);
    }
    const v = series[0]!.value;
    return Number.isFinite(v) ? v : null;
  }
}
