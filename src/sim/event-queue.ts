// The simulator's event queue: a binary min-heap on (time, insertion order) kept in flat typed
// arrays, so pushing and popping an event allocates nothing. Ties pop in insertion order, which
// keeps runs deterministic and FIFO at equal times.

export class EventQueue<T> {
  private time: Float64Array;
  private seq: Float64Array;
  private kind: Int32Array;
  private arg: Int32Array;
  private obj: (T | null)[];
  private n = 0;
  private counter = 0;

  /** Filled by pop(): the event just taken. */
  poppedTime = 0;
  poppedKind = 0;
  poppedArg = 0;
  poppedObj: T | null = null;

  constructor(capacity = 1024) {
    this.time = new Float64Array(capacity);
    this.seq = new Float64Array(capacity);
    this.kind = new Int32Array(capacity);
    this.arg = new Int32Array(capacity);
    this.obj = new Array<T | null>(capacity).fill(null);
  }

  get size(): number {
    return this.n;
  }

  /** Time of the earliest event, Infinity when empty. */
  peekTime(): number {
    return this.n > 0 ? this.time[0]! : Infinity;
  }

  push(time: number, kind: number, arg: number, obj: T | null): void {
    if (this.n === this.time.length) this.grow();
    const seq = this.counter++;
    // Sift up with a hole: parents move down until the new event's place is found.
    let i = this.n++;
    const t = this.time;
    const s = this.seq;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = t[p]!;
      if (pt < time || (pt === time && s[p]! < seq)) break;
      this.move(p, i);
      i = p;
    }
    t[i] = time;
    s[i] = seq;
    this.kind[i] = kind;
    this.arg[i] = arg;
    this.obj[i] = obj;
  }

  /** Takes the earliest event into the popped* fields; returns false when empty. */
  pop(): boolean {
    if (this.n === 0) return false;
    this.poppedTime = this.time[0]!;
    this.poppedKind = this.kind[0]!;
    this.poppedArg = this.arg[0]!;
    this.poppedObj = this.obj[0]!;
    const last = --this.n;
    if (last > 0) {
      const t = this.time;
      const s = this.seq;
      const lt = t[last]!;
      const ls = s[last]!;
      const lk = this.kind[last]!;
      const la = this.arg[last]!;
      const lo = this.obj[last]!;
      let i = 0;
      const half = last >> 1;
      while (i < half) {
        let c = 2 * i + 1;
        const r = c + 1;
        if (r < last && (t[r]! < t[c]! || (t[r] === t[c] && s[r]! < s[c]!))) c = r;
        if (lt < t[c]! || (lt === t[c] && ls < s[c]!)) break;
        this.move(c, i);
        i = c;
      }
      t[i] = lt;
      s[i] = ls;
      this.kind[i] = lk;
      this.arg[i] = la;
      this.obj[i] = lo;
    }
    this.obj[last] = null;
    return true;
  }

  private move(from: number, to: number): void {
    this.time[to] = this.time[from]!;
    this.seq[to] = this.seq[from]!;
    this.kind[to] = this.kind[from]!;
    this.arg[to] = this.arg[from]!;
    this.obj[to] = this.obj[from]!;
  }

  private grow(): void {
    const cap = this.time.length * 2;
    const time = new Float64Array(cap);
    time.set(this.time);
    const seq = new Float64Array(cap);
    seq.set(this.seq);
    const kind = new Int32Array(cap);
    kind.set(this.kind);
    const arg = new Int32Array(cap);
    arg.set(this.arg);
    this.time = time;
    this.seq = seq;
    this.kind = kind;
    this.arg = arg;
    this.obj.length = cap;
    this.obj.fill(null, this.n);
  }
}
