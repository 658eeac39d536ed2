// Confines a tenant's PromQL to its namespace, as prom-label-proxy's enforcer does: every vector and
// matrix selector gets `namespace="<ns>"`, and any namespace matcher it had (=, !=, =~, !~) is
// overwritten. Pure: a scanner that knows PromQL's lexical shape, not a full parser.
import { ValidationError } from '../../common/errors.js';

const ACCEPTED = 'PromQL with balanced quotes, braces, brackets and parentheses, each label matcher written name op "value"';

/**
 * The device plugin's series, scraped without honor_labels, name the GPU pod's namespace
 * `exported_namespace` (the target's own `namespace` is the plugin's). A selector that matches on
 * it is confined on it instead of on `namespace`, so both arms of SAIR's GPU queries keep working.
 */
const NAMESPACE_LABELS = ['namespace', 'exported_namespace'] as const;

/** Words Prometheus never reads as a metric name. */
const ALWAYS_KEYWORDS = new Set(['bool', 'on', 'ignoring', 'group_left', 'group_right', 'atan2']);
/** Words that are numbers wherever they stand. */
const NUMBER_WORDS = new Set(['inf', 'nan']);
/** Aggregations: a call, or a keyword before `by`/`without`; elsewhere a metric name, as in Prometheus's grammar. */
const AGGREGATIONS = new Set(['sum', 'avg', 'count', 'min', 'max', 'group', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'limitk', 'limit_ratio']);
/** Set operators: between operands they are operators, where an operand stands a metric name. */
const SET_OPERATORS = new Set(['and', 'or', 'unless']);
const BY_WITHOUT = /^(by|without)(?![A-Za-z0-9_:])/i;
const OPERATOR_CHARS = /[-+*/%^=!<>@,]/;

const IDENT_START = /[A-Za-z_:]/;
const IDENT_PART = /[A-Za-z0-9_:]/;
const LABEL_START = /[A-Za-z_]/;
const LABEL_PART = /[A-Za-z0-9_]/;
const SPACE = /\s/;

interface Matcher {
  name: string;
  text: string;
}

class Scanner {
  i = 0;
  constructor(
    readonly src: string,
    readonly field: string,
  ) {}

  fail(): never {
    throw new ValidationError(this.field, ACCEPTED, this.src);
  }

  peek(offset = 0): string {
    return this.src[this.i + offset] ?? '';
  }

  skipSpace(): string {
    const start = this.i;
    while (this.i < this.src.length && SPACE.test(this.peek())) this.i++;
    return this.src.slice(start, this.i);
  }

  /** A string literal ("…", '…' with escapes, or `…` raw), returned with its quotes. */
  string(): string {
    const quote = this.peek();
    const start = this.i++;
    while (this.i < this.src.length) {
      const c = this.src[this.i++];
      if (c === '\\' && quote !== '`') this.i++;
      else if (c === quote) return this.src.slice(start, this.i);
    }
    return this.fail();
  }

  word(part: RegExp): string {
    const start = this.i;
    while (this.i < this.src.length && part.test(this.peek())) this.i++;
    return this.src.slice(start, this.i);
  }

  /** A number or duration (`1e-3`, `0x1f`, `5m30s`), copied as it is. */
  number(): string {
    const start = this.i;
    while (this.i < this.src.length) {
      const c = this.peek();
      if (/[0-9A-Za-z_.]/.test(c)) this.i++;
      else if ((c === '+' || c === '-') && /[eE]/.test(this.src[this.i - 1] ?? '') && !/^0x/i.test(this.src.slice(start))) this.i++;
      else break;
    }
    return this.src.slice(start, this.i);
  }

  /** The matchers of `{…}`, the opening brace at the cursor. */
  matchers(): Matcher[] {
    this.i++;
    const out: Matcher[] = [];
    for (;;) {
      this.skipSpace();
      if (this.peek() === '}') {
        this.i++;
        return out;
      }
      const start = this.i;
      const quoted = ['"', "'", '`'].includes(this.peek());
      if (!quoted && !LABEL_START.test(this.peek())) this.fail();
      const raw = quoted ? this.string() : this.word(LABEL_PART);
      const name = quoted ? raw.slice(1, -1) : raw;
      this.skipSpace();
      const op = ['=~', '!~', '!=', '='].find((o) => this.src.startsWith(o, this.i));
      if (!op) {
        // A quoted name alone is the metric name (Prometheus 3): `{"my.metric", a="b"}`.
        if (!quoted || (this.peek() !== ',' && this.peek() !== '}')) this.fail();
        out.push({ name: '__name__', text: this.src.slice(start, this.i).trim() });
        if (this.peek() === ',') this.i++;
        continue;
      }
      this.i += op.length;
      this.skipSpace();
      if (!['"', "'", '`'].includes(this.peek())) this.fail();
      const value = this.string();
      out.push({ name, text: `${raw}${op}${value}` });
      this.skipSpace();
      if (this.peek() === ',') this.i++;
      else if (this.peek() !== '}') this.fail();
    }
  }

  /** `(a, b)` after by/on/…, copied as it is. */
  labelList(): string {
    const start = this.i++;
    while (this.i < this.src.length && this.peek() !== ')') {
      if (['"', "'", '`'].includes(this.peek())) this.string();
      else if (this.peek() === '(' || /[{}[\]]/.test(this.peek())) this.fail();
      else this.i++;
    }
    if (this.peek() !== ')') this.fail();
    this.i++;
    return this.src.slice(start, this.i);
  }
}

/** `{…}` with the namespace labels it names (or `namespace` where it names none) set to `namespace`. */
function enforce(matchers: readonly Matcher[], namespace: string): string {
  const enforced = `"${namespace.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
  const named = NAMESPACE_LABELS.filter((l) => matchers.some((m) => m.name === l));
  const labels: readonly string[] = named.length > 0 ? named : ['namespace'];
  const out: string[] = [];
  const done = new Set<string>();
  for (const m of matchers) {
    if (!labels.includes(m.name)) out.push(m.text);
    else if (!done.has(m.name)) {
      out.push(`${m.name}=${enforced}`);
      done.add(m.name);
    }
  }
  for (const l of labels) if (!done.has(l)) out.push(`${l}=${enforced}`);
  return `{${out.join(',')}}`;
}

/**
 * The query with every selector confined to `namespace`. Throws a ValidationError naming `field`
 * when the query's quotes, braces, brackets or parentheses do not balance or a matcher is malformed.
 */
export function confineToNamespace(query: string, namespace: string, field = 'query'): string {
  const s = new Scanner(query, field);
  const out: string[] = [];
  const closers: string[] = [];
  // Whether an operand comes next: there, Prometheus reads even `sum`, `by` or `offset` as a metric name.
  let operand = true;
  while (s.i < query.length) {
    const c = s.peek();
    if (SPACE.test(c)) out.push(s.skipSpace());
    else if (c === '#') {
      const end = query.indexOf('\n', s.i);
      out.push(query.slice(s.i, end < 0 ? query.length : end));
      s.i = end < 0 ? query.length : end;
    } else if (c === '"' || c === "'" || c === '`') {
      out.push(s.string());
      operand = false;
    } else if (c === '{') {
      out.push(enforce(s.matchers(), namespace));
      operand = false;
    } else if (c === '(' || c === '[') {
      closers.push(c === '(' ? ')' : ']');
      out.push(c);
      s.i++;
      operand = true;
    } else if (c === ')' || c === ']') {
      if (closers.pop() !== c) s.fail();
      out.push(c);
      s.i++;
      operand = false;
    } else if (c === '}') s.fail();
    else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(s.peek(1)))) {
      out.push(s.number());
      operand = false;
    } else if (IDENT_START.test(c) && closers.at(-1) !== ']') {
      operand = identifier(s, out, operand, namespace);
    } else {
      out.push(c);
      s.i++;
      if (OPERATOR_CHARS.test(c)) operand = true;
    }
  }
  if (closers.length > 0) s.fail();
  return out.join('');
}

/** Copies the word at the cursor, confined where it is a metric name; returns whether an operand comes next. */
function identifier(s: Scanner, out: string[], operand: boolean, namespace: string): boolean {
  const name = s.word(IDENT_PART);
  const space = s.skipSpace();
  const word = name.toLowerCase();
  const next = s.peek();
  if (NUMBER_WORDS.has(word)) {
    out.push(name, space);
    return false;
  }
  if (ALWAYS_KEYWORDS.has(word)) {
    out.push(name, space, next === '(' && word !== 'atan2' && word !== 'bool' ? s.labelList() : '');
    return true;
  }
  if (next === '(' && (operand || !['by', 'without'].includes(word))) {
    out.push(name, space); // a function or aggregation call
    return true;
  }
  if (operand && AGGREGATIONS.has(word) && BY_WITHOUT.test(s.src.slice(s.i))) {
    out.push(name, space);
    return false;
  }
  if (!operand && next === '(' && ['by', 'without'].includes(word)) {
    out.push(name, space, s.labelList());
    return false;
  }
  if (!operand && SET_OPERATORS.has(word)) {
    out.push(name, space);
    return true;
  }
  if (!operand && word === 'offset') {
    out.push(name, space);
    return false;
  }
  out.push(name, next === '{' ? '' : enforce([], namespace), space, next === '{' ? enforce(s.matchers(), namespace) : '');
  return false;
}
