// Which request shape an OpenAI-compatible server accepts. Servers differ in what they refuse:
// response_format json_schema (OpenAI's older models, llama.cpp before September 2024, vLLM when its
// grammar backend cannot compile the schema), `max_tokens` (OpenAI's reasoning models want
// `max_completion_tokens`) and a temperature other than 1 (the same models). A refusal that names one
// of these moves the shape one step down, never back up, so negotiation ends after a few requests;
// the shape learned is kept per endpoint (base URL and model). Pure, except CompatMemory's map.

/** How the answer's structure is asked for: a schema, any JSON object, or the prompt alone. */
export type OutputMode = 'json_schema' | 'json_object' | 'prompt';
export type TokenParam = 'max_tokens' | 'max_completion_tokens';

export interface RequestShape {
  output: OutputMode;
  tokenParam: TokenParam;
  /** Send the configured temperature (false: leave the server's default). */
  temperature: boolean;
}

/** Tried first: the schema holds the answer to the candidate ids; `max_tokens` is what every server reads. */
export const FIRST_SHAPE: RequestShape = { output: 'json_schema', tokenParam: 'max_tokens', temperature: true };

/** An HTTP error answer, read from any server's error body. */
export interface Refusal {
  status: number;
  message: string;
  param: string | null;
  code: string | null;
}

const OUTPUT_ORDER: OutputMode[] = ['json_schema', 'json_object', 'prompt'];
/** Words of a refusal about structured output: OpenAI, vLLM (xgrammar, guided decoding), llama.cpp (grammar). */
const ABOUT_OUTPUT = /response_format|json_schema|json schema|json_object|structured output|guided|grammar|xgrammar|outlines/i;
/** OpenAI's refusal of `max_tokens`; not vLLM's "'max_tokens' or 'max_completion_tokens' is too large". */
const MAX_TOKENS_REFUSED = /max_tokens'? is not supported|unsupported parameter:? '?max_tokens|use '?max_completion_tokens'? instead/i;
const TEMPERATURE_REFUSED = /'?temperature'? does not support|unsupported value:? '?temperature/i;

/**
 * The next shape after a refusal and what was learned, or null when the refusal is not about the
 * shape (a bad key, an unknown model, an overloaded server): then it is an error like any other.
 * Status 400 and 422 refuse a request; llama.cpp before September 2024 refused json_schema with 500.
 */
export function nextShape(shape: RequestShape, r: Refusal): { shape: RequestShape; learned: string } | null {
  if (r.status !== 400 && r.status !== 422 && !(r.status === 500 && ABOUT_OUTPUT.test(r.message))) return null;
  const about = `${r.param ?? ''} ${r.message}`;
  const said = `${r.status} "${r.message.slice(0, 160)}"`;
  if (shape.tokenParam === 'max_tokens' && ((r.param === 'max_tokens' && r.code === 'unsupported_parameter') || MAX_TOKENS_REFUSED.test(r.message))) {
    return { shape: { ...shape, tokenParam: 'max_completion_tokens' }, learned: `sends max_completion_tokens: max_tokens refused (${said})` };
  }
  if (shape.temperature && ((r.param === 'temperature' && r.code === 'unsupported_value') || TEMPERATURE_REFUSED.test(r.message))) {
    return { shape: { ...shape, temperature: false }, learned: `leaves the temperature to the server: refused (${said})` };
  }
  if (shape.output !== 'prompt' && (r.param === 'response_format' || ABOUT_OUTPUT.test(about))) {
    const output = OUTPUT_ORDER[OUTPUT_ORDER.indexOf(shape.output) + 1]!;
    return { shape: { ...shape, output }, learned: `structured output ${output}: ${shape.output} refused (${said})` };
  }
  return null;
}

/**
 * The error of any server's error body, as the openai client hands it over (its `error` field) or
 * as sent: OpenAI and current vLLM `{"error":{"message","type","param","code"}}`, vLLM before 0.10
 * `{"object":"error","message",...}`, llama.cpp `{"error":{"code","message","type"}}`, Ollama's
 * native API `{"error":"..."}`.
 */
export function refusalOf(status: number, body: unknown, fallbackMessage: string): Refusal {
  const inner = isObject(body) && 'error' in body ? body.error : body;
  if (typeof inner === 'string') return { status, message: inner, param: null, code: null };
  if (!isObject(inner)) return { status, message: fallbackMessage, param: null, code: null };
  const message = typeof inner.message === 'string' ? inner.message : fallbackMessage;
  const param = typeof inner.param === 'string' ? inner.param : null;
  const code = typeof inner.code === 'string' ? inner.code : typeof inner.code === 'number' ? String(inner.code) : null;
  return { status, message, param, code };
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null;
}

export function describeShape(shape: RequestShape): string {
  const output = shape.output === 'prompt' ? 'none (JSON asked for in the prompt, parsed strictly)' : shape.output;
  return `structured output ${output}; ${shape.tokenParam}${shape.temperature ? '' : '; server-default temperature'}`;
}

export interface LearnedShape {
  shape: RequestShape;
  /** What each refusal taught, oldest first. */
  learned: string[];
  /** Whether a request of this shape has been answered (not only refused). */
  confirmed: boolean;
}

/** Shapes learned per endpoint, shared by every selector on the same base URL and model. */
export class CompatMemory {
  private readonly shapes = new Map<string, LearnedShape>();

  static key(baseUrl: string, model: string): string {
    return `${baseUrl.replace(/\/+$/, '')}|${model}`;
  }

  get(key: string): LearnedShape {
    let s = this.shapes.get(key);
    if (!s) {
      s = { shape: FIRST_SHAPE, learned: [], confirmed: false };
      this.shapes.set(key, s);
    }
    return s;
  }

  /** A refusal moved the shape down. */
  learn(key: string, shape: RequestShape, learned: string): void {
    const s = this.get(key);
    s.shape = shape;
    s.learned.push(learned);
    s.confirmed = false;
  }

  /** A request of the current shape was answered; true the first time. */
  confirm(key: string): boolean {
    const s = this.get(key);
    if (s.confirmed) return false;
    s.confirmed = true;
    return true;
  }
}
