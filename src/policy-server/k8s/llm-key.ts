// LLM API keys from named Secrets, kept fresh while they are used: a key older than the refresh
// interval is read again (one GET of that Secret by name; nothing is listed or watched, so RBAC's
// `get` on the named Secret is all it needs), so a rotated key is sent without a restart. A change
// is logged and counted, never the key itself.
import { Counter, type Registry } from 'prom-client';
import { ValidationError, errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type * as k8s from '@kubernetes/client-node';
import { readApiKey } from './llm-settings.js';

export interface SecretKeyRef {
  namespace: string;
  name: string;
  key: string;
}

export interface LlmKeysOptions {
  core: k8s.CoreV1Api;
  logger: Logger;
  registry: Registry;
  /** A key read longer ago than this is read again before its next use. */
  refreshMs: number;
  now?: () => number;
}

interface Entry {
  value?: string;
  readAt: number;
  reading?: Promise<string>;
}

export class LlmKeys {
  private readonly entries = new Map<string, Entry>();
  private readonly changes: Counter;
  private readonly now: () => number;

  constructor(private readonly o: LlmKeysOptions) {
    this.now = o.now ?? Date.now;
    this.changes = new Counter({ name: 'sair_policy_llm_key_changes_total', help: 'LLM API keys found changed in their Secret (rotations), by Secret', labelNames: ['secret'], registers: [o.registry] });
  }

  /** The key's current value, for each request; `initial`, when given, was just read at start. */
  source(ref: SecretKeyRef, initial?: string): () => Promise<string> {
    const id = `${ref.namespace}/${ref.name}/${ref.key}`;
    if (!this.entries.has(id)) this.entries.set(id, initial === undefined ? { readAt: -Infinity } : { value: initial, readAt: this.now() });
    return () => this.get(id, ref);
  }

  private get(id: string, ref: SecretKeyRef): Promise<string> {
    const e = this.entries.get(id)!;
    if (e.value !== undefined && this.now() - e.readAt < this.o.refreshMs) return Promise.resolve(e.value);
    // Concurrent decisions share one read.
    e.reading ??= this.read(e, ref).finally(() => {
      e.reading = undefined;
    });
    return e.reading;
  }

  private async read(e: Entry, ref: SecretKeyRef): Promise<string> {
    const secret = `${ref.namespace}/${ref.name}`;
    let value: string;
    try {
      value = await readApiKey(this.o.core, { namespace: ref.namespace, secret: { name: ref.name, key: ref.key } });
    } catch (err) {
      // A Secret or key that is gone is an answer; an API server that does not answer is not, so
      // the key read before stays in use until the next interval.
      if (err instanceof ValidationError || e.value === undefined) throw err;
      this.o.logger.warn({ secret, key: ref.key, err: errorMessage(err) }, 'LLM API key not re-read; using the one read before');
      e.readAt = this.now();
      return e.value;
    }
    if (e.value !== undefined && value !== e.value) {
      this.changes.inc({ secret });
      this.o.logger.info({ secret, key: ref.key }, 'LLM API key changed in its Secret; the next request uses the new one');
    }
    e.value = value;
    e.readAt = this.now();
    return value;
  }
}
