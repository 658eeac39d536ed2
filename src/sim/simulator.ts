// The discrete-event engine: requests flow through a stage graph; each stage has a queue, batching
// replicas with a (base + perItem * b) / share service time, and replicas that go Pending ->
// Starting (cold start) -> Ready -> Draining. Requests live in flat typed arrays and events in a
// typed-array heap, so the hot path allocates nothing per request. Everything random comes from
// seeded streams: arrivals from one, service and start-up noise from another, so every controller
// faces the same arrivals for a seed. GPU replicas sit on whole GPUs of a finite (or unlimited)
// cluster (placement.ts): one that fits nowhere stays Pending until room frees up.
import { EventQueue } from './event-queue.js';
import { bucketOf, newHistogram } from './histogram.js';
import { maxThroughputPerReplica, type PipelineModel, type StageModel } from './pipeline.js';
import { GpuPool } from './placement.js';
import { Rng } from './rng.js';
import type { ArrivalProcess, Workload } from './workload.js';

const EV_ARRIVAL = 0;
const EV_BATCH_DONE = 1;
const EV_BATCH_TIMER = 2;
const EV_STARTING = 3;
const EV_READY = 4;
const EV_SCRAPE = 5;

const R_PENDING = 0;
const R_STARTING = 1;
const R_READY = 2;
const R_DRAINING = 3;
const R_GONE = 4;

const Q_ACTIVE = 0;
const Q_DROPPED = 1;
const Q_DONE = 2;
const Q_FREE = 3;

export class Replica {
  state = R_PENDING;
  gen = 0;
  busy = false;
  batchLen = 0;
  /** When the running batch started, ms (for the batch service-time counters). */
  batchStart = 0;
  /** The share the node agent enforces, 0..1: the stage's, or less where its GPU had no room (clamped). */
  share = 1;
  /** The GPU it sits on and the percent of it it occupies; -1 for CPU replicas and unscheduled ones. */
  gpu = -1;
  occupied = 0;
  /** Pending for lack of room on every GPU; no scheduling delay runs until it is placed. */
  unscheduled = false;
  /** Running below its stage's share because its GPU had no room for all of it. */
  clamped = false;
  readonly batch: Int32Array;
  constructor(
    readonly stage: number,
    maxBatch: number,
  ) {
    this.batch = new Int32Array(maxBatch);
  }
}

/** Counters one stage collects between two scrapes. */
export interface StageBucket {
  arrivals: number;
  completions: number;
  drops: number;
  /** Busy time of ready replicas, replica-ms. */
  busyReadyMs: number;
  /** Busy time of all replicas (draining included), replica-ms. */
  busyAllMs: number;
  readyMs: number;
  batches: number;
  /** Batches finished, their items and their summed service time (ms), like Triton's exec count and compute duration. */
  batchesDone: number;
  batchItems: number;
  batchServiceMs: number;
  queueLength: number;
  latency: Uint32Array;
}

/** What one scrape saw: per-stage counters since the previous scrape, plus pipeline totals. */
export interface ScrapeBucket {
  index: number;
  time: number;
  stages: StageBucket[];
  arrivals: number;
  completed: number;
  dropped: number;
  violations: number;
  latency: Uint32Array;
  /** Share-priced dollars spent in the interval. */
  cost: number;
  /** Packed dollars spent in the interval: whole GPUs in use, and replicas placed. */
  packedCost: number;
  replicas: number[];
  readyReplicas: number[];
  gpuCores: (number | null)[];
  /** Replicas per stage that no GPU has room for, at the scrape. */
  pendingReplicas: number[];
  /** GPUs hosting at least one replica, at the scrape. */
  gpusInUse: number;
}

export interface StageTotals {
  arrivals: number;
  completions: number;
  drops: number;
  batches: number;
  /** Sum over served items of the time from entering the stage to starting service, ms. */
  waitSumMs: number;
  /** Items that started service (the denominator of the mean wait). */
  started: number;
  /** Sum over completions of the time spent in the stage, ms. */
  sojournSumMs: number;
  /** Items taken out of the queue unserved (timed out, or dropped on another branch), and their time in the stage. */
  discarded: number;
  discardedSumMs: number;
  /** Time integrals, ms-weighted: items in the stage, items queued, busy ready replicas, ready, all charged. */
  inStageMs: number;
  queuedMs: number;
  busyReadyMs: number;
  readyMs: number;
  chargedMs: number;
  shareMs: number;
  /** Replica-ms spent Pending for lack of a GPU with room. */
  unscheduledMs: number;
  /** Share changes that a replica's GPU could not give in full (the node agent clamped them). */
  clamps: number;
}

class StageState {
  readonly model: StageModel;
  readonly maxBatch: number;
  readonly baseMs: number;
  readonly perItemMs: number;
  readonly sigma: number;
  readonly exponential: boolean;
  readonly batchTimeoutMs: number;
  readonly queueCapacity: number;
  /** The stage's share, 0..1 (cores / 100); CPU stages 1. */
  share: number;
  /** The stage's share in percent; 100 for CPU stages. */
  cores: number;
  desired: number;
  readonly replicas: Replica[] = [];
  readonly idle: Replica[] = [];
  nPending = 0;
  /** Pending replicas no GPU has room for (counted in nPending too). */
  nUnscheduled = 0;
  /** Replicas running below the stage's share because their GPU had no room. */
  nClamped = 0;
  nStarting = 0;
  nReady = 0;
  nDraining = 0;
  nBusyReady = 0;
  nBusyAll = 0;
  queue = new Int32Array(1024);
  qHead = 0;
  qLen = 0;
  inStage = 0;
  timerAt = -1;
  lastT = 0;
  readonly totals: StageTotals = {
    arrivals: 0,
    completions: 0,
    drops: 0,
    batches: 0,
    waitSumMs: 0,
    started: 0,
    sojournSumMs: 0,
    discarded: 0,
    discardedSumMs: 0,
    inStageMs: 0,
    queuedMs: 0,
    busyReadyMs: 0,
    readyMs: 0,
    chargedMs: 0,
    shareMs: 0,
    unscheduledMs: 0,
    clamps: 0,
  };
  bucket: StageBucket;

  constructor(model: StageModel) {
    this.model = model;
    this.maxBatch = model.maxBatch;
    this.baseMs = model.service.baseMs;
    this.perItemMs = model.service.perItemMs;
    this.sigma = model.service.sigma;
    this.exponential = model.service.distribution === 'exponential';
    this.batchTimeoutMs = model.batchTimeoutMs;
    this.queueCapacity = model.queueCapacity;
    this.cores = model.gpuCores ? model.gpuCores.initial : 100;
    this.share = this.cores / 100;
    this.desired = 0;
    this.bucket = emptyStageBucket();
  }

  get charged(): number {
    return this.replicas.length;
  }
}

function emptyStageBucket(): StageBucket {
  return { arrivals: 0, completions: 0, drops: 0, busyReadyMs: 0, busyAllMs: 0, readyMs: 0, batches: 0, batchesDone: 0, batchItems: 0, batchServiceMs: 0, queueLength: 0, latency: newHistogram() };
}

/** What the cluster runs for one stage, and how much of it waits for or lacks GPU room. */
export interface SimStageAllocation {
  replicas: number;
  readyReplicas: number;
  /** The share the stage asks for, percent. */
  gpuCores: number | null;
  /** The least share a placed replica runs at: below gpuCores where a replica is clamped. */
  enforcedGpuCores: number | null;
  /** Replicas Pending because no GPU has room for them. */
  pendingReplicas: number;
  /** Replicas enforced below the stage's share because their GPU has no room for all of it. */
  clampedReplicas: number;
}

export interface SimulationOptions {
  pipeline: PipelineModel;
  workload: Workload;
  seed: number;
  durationMs: number;
  scrapeIntervalMs: number;
  /** Keep every end-to-end latency for exact run percentiles (costs 8 bytes a request). */
  keepLatencies?: boolean;
  /** Called with each scrape bucket as it closes. */
  onScrape?: (bucket: ScrapeBucket) => void;
}

export class Simulation {
  readonly pipeline: PipelineModel;
  readonly workload: Workload;
  readonly durationMs: number;
  readonly scrapeIntervalMs: number;
  now = 0;
  events = 0;

  private readonly q = new EventQueue<Replica>(4096);
  private readonly stages: StageState[];
  private readonly nStages: number;
  private readonly sinks: number;
  private readonly entries: number[];
  private readonly serviceRng: Rng;
  private readonly arrivals: ArrivalProcess;
  private readonly requestTimeoutMs: number;
  private readonly sloMs: number;
  private readonly onScrape: ((bucket: ScrapeBucket) => void) | undefined;

  // Requests, struct-of-arrays, ids recycled through a free list.
  private cap = 0;
  private reqArrive = new Float64Array(0);
  private reqState = new Uint8Array(0);
  private reqRefs = new Int32Array(0);
  private reqSinks = new Int32Array(0);
  private reqJoin = new Int32Array(0);
  private reqEnter = new Float64Array(0);
  private free = new Int32Array(0);
  private nFree = 0;
  private highWater = 0;

  // Pipeline totals.
  arrived = 0;
  completed = 0;
  dropped = 0;
  violations = 0;
  private costDollars = 0;
  private costRatePerHour = 0;
  private packedDollars = 0;
  private packedRatePerHour = 0;
  private costT = 0;
  /** The cluster's GPUs, and the GPU replicas waiting for room on one, oldest first. */
  readonly gpus: GpuPool;
  private readonly unscheduled: Replica[] = [];
  private gpusInUseMs = 0;
  private peakGpusInUse = 0;
  private readonly latencies: Float64Array[] = [];
  private latencyChunk: Float64Array | null = null;
  private latencyPos = 0;
  private readonly keepLatencies: boolean;

  // The open scrape bucket.
  private bArrivals = 0;
  private bCompleted = 0;
  private bDropped = 0;
  private bViolations = 0;
  private bLatency = newHistogram();
  private bCostStart = 0;
  private bPackedStart = 0;
  private scrapeIndex = 0;

  constructor(opts: SimulationOptions) {
    this.pipeline = opts.pipeline;
    this.workload = opts.workload;
    this.durationMs = opts.durationMs;
    this.scrapeIntervalMs = opts.scrapeIntervalMs;
    this.onScrape = opts.onScrape;
    this.keepLatencies = opts.keepLatencies ?? true;
    this.stages = opts.pipeline.stages.map((m) => new StageState(m));
    this.nStages = this.stages.length;
    this.sinks = opts.pipeline.stages.filter((s) => s.downstream.length === 0).length;
    this.entries = opts.pipeline.stages.filter((s) => s.upstream.length === 0).map((s) => s.index);
    this.requestTimeoutMs = opts.pipeline.requestTimeoutMs;
    this.sloMs = opts.pipeline.sloP99Ms;
    this.serviceRng = new Rng(opts.seed * 2 + 1);
    this.arrivals = opts.workload.arrivals(new Rng(opts.seed * 2), opts.durationMs);
    this.gpus = new GpuPool(opts.pipeline.cluster);
    this.growRequests(1024);
    // Initial replicas start Ready: the run begins from a deployed, warm pipeline.
    for (const st of this.stages) this.startReady(st, st.model.replicas.initial);
    this.computeCostRate();
    const first = this.arrivals.next(0);
    if (first < this.durationMs) this.q.push(first, EV_ARRIVAL, 0, null);
    this.q.push(this.scrapeIntervalMs, EV_SCRAPE, 0, null);
  }

  // ---- the controller-facing surface -------------------------------------------------------

  /** Process every event up to and including time `t`, then set the clock to `t`. */
  runUntil(t: number): void {
    const q = this.q;
    const end = Math.min(t, this.durationMs);
    while (q.size > 0 && q.peekTime() <= end) {
      q.pop();
      this.now = q.poppedTime;
      this.events++;
      switch (q.poppedKind) {
        case EV_ARRIVAL:
          this.onArrival();
          break;
        case EV_BATCH_DONE:
          this.onBatchDone(q.poppedObj!, q.poppedArg);
          break;
        case EV_BATCH_TIMER: {
          const st = this.stages[q.poppedArg]!;
          if (st.timerAt === this.now) {
            st.timerAt = -1;
            this.dispatch(st);
          }
          break;
        }
        case EV_STARTING:
          this.onStarting(q.poppedObj!, q.poppedArg);
          break;
        case EV_READY:
          this.onReady(q.poppedObj!, q.poppedArg);
          break;
        case EV_SCRAPE:
          this.onScrapeEvent();
          break;
      }
    }
    if (end > this.now) this.now = end;
  }

  /**
   * Set a stage's starting point before the run begins: `n` replicas, already Ready, at the given
   * share. This is the deployment as it stood at time 0, not a scaling action.
   */
  provision(stage: number, n: number, gpuCores?: number): void {
    if (this.now !== 0 || this.events !== 0) throw new Error('provision() is only allowed before the simulation starts');
    const st = this.stages[stage]!;
    for (const r of st.replicas) this.unbind(st, r);
    if (gpuCores !== undefined && st.model.kind === 'gpu') {
      st.cores = gpuCores;
      st.share = gpuCores / 100;
    }
    this.startReady(st, n);
    this.placeWaiting();
    this.peakGpusInUse = 0;
    this.computeCostRate();
  }

  /** `n` Ready replicas, each on a GPU with room; one that fits nowhere is Pending until room frees up. */
  private startReady(st: StageState, n: number): void {
    st.replicas.length = 0;
    st.idle.length = 0;
    st.nReady = 0;
    st.nPending = 0;
    st.nUnscheduled = 0;
    st.nClamped = 0;
    for (let i = 0; i < n; i++) {
      const r = new Replica(st.model.index, st.maxBatch);
      st.replicas.push(r);
      if (this.bind(st, r)) {
        r.state = R_READY;
        st.idle.push(r);
        st.nReady++;
      } else {
        this.park(st, r);
      }
    }
    st.desired = n;
  }

  /** Place a replica on a GPU with room for the stage's share (CPU replicas need none); false when none has. */
  private bind(st: StageState, r: Replica): boolean {
    r.share = st.share;
    if (st.model.kind !== 'gpu') return true;
    const need = this.gpus.occupancyOf(st.cores);
    const g = this.gpus.place(need);
    if (g < 0) return false;
    r.gpu = g;
    r.occupied = need;
    return true;
  }

  /** A replica leaves: free what it held on its GPU, or its place in the queue for one. */
  private unbind(st: StageState, r: Replica): void {
    if (r.unscheduled) {
      r.unscheduled = false;
      st.nUnscheduled--;
      this.unscheduled.splice(this.unscheduled.indexOf(r), 1);
    }
    if (r.clamped) {
      r.clamped = false;
      st.nClamped--;
    }
    if (r.gpu >= 0) {
      this.gpus.release(r.gpu, r.occupied);
      r.gpu = -1;
      r.occupied = 0;
    }
  }

  /** Pending for lack of room: waits, without a scheduling delay running, until placeWaiting() fits it. */
  private park(st: StageState, r: Replica): void {
    r.state = R_PENDING;
    r.unscheduled = true;
    st.nPending++;
    st.nUnscheduled++;
    this.unscheduled.push(r);
  }

  /**
   * Room freed on some GPU: clamped replicas get their stage's share back where their GPU now has
   * room (the node agent's next reconcile), then waiting replicas are placed, oldest first (the
   * scheduler's retry). A placed replica then takes the scheduling delay and its cold start.
   */
  private placeWaiting(): void {
    for (const st of this.stages) {
      if (st.nClamped === 0) continue;
      for (const r of st.replicas) if (r.clamped) this.resize(st, r);
    }
    for (let i = 0; i < this.unscheduled.length; ) {
      const r = this.unscheduled[i]!;
      const st = this.stages[r.stage]!;
      if (!this.bind(st, r)) {
        i++;
        continue;
      }
      this.advance(st);
      this.unscheduled.splice(i, 1);
      r.unscheduled = false;
      st.nUnscheduled--;
      this.q.push(this.now + this.pipeline.schedulingDelayMs, EV_STARTING, r.gen, r);
    }
  }

  /** Give a placed replica its stage's share, or what its GPU has room for. */
  private resize(st: StageState, r: Replica): void {
    const got = this.gpus.resize(r.gpu, r.occupied, st.cores);
    r.gpu = got.gpu;
    r.occupied = got.occupancy;
    const clamped = got.share < st.cores;
    r.share = clamped ? got.share / 100 : st.share;
    if (clamped !== r.clamped) st.nClamped += clamped ? 1 : -1;
    r.clamped = clamped;
  }

  /** Ask for `n` replicas of a stage (the scale subresource's spec.replicas). */
  setReplicas(stage: number, n: number): void {
    const st = this.stages[stage]!;
    this.touchCost();
    this.advance(st);
    st.desired = n;
    let active = st.nPending + st.nStarting + st.nReady;
    const removing = active > n;
    while (active < n) {
      const r = new Replica(stage, st.maxBatch);
      st.replicas.push(r);
      if (this.bind(st, r)) {
        r.state = R_PENDING;
        st.nPending++;
        this.q.push(this.now + this.pipeline.schedulingDelayMs, EV_STARTING, r.gen, r);
      } else {
        this.park(st, r);
      }
      active++;
    }
    while (active > n) {
      this.removeOne(st);
      active--;
    }
    if (removing) this.placeWaiting();
    this.computeCostRate();
  }

  /**
   * Set a GPU stage's core share (percent); running batches keep the share they started with. A
   * replica whose GPU has no room for the new share gets what the GPU has free (the node agent
   * clamps it, so a GPU's shares never add up to more than 100 %), and the rest when room frees up.
   */
  setGpuCores(stage: number, cores: number): void {
    const st = this.stages[stage]!;
    this.touchCost();
    this.advance(st);
    const lower = cores < st.cores;
    st.cores = cores;
    st.share = cores / 100;
    for (const r of st.replicas) {
      if (r.gpu < 0) {
        r.share = st.share;
        continue;
      }
      this.resize(st, r);
      if (r.clamped) st.totals.clamps++;
    }
    if (lower) this.placeWaiting();
    this.computeCostRate();
  }

  private leastShare(st: StageState): number {
    if (st.nClamped === 0) return st.share;
    let least = st.share;
    for (const r of st.replicas) if (r.clamped) least = Math.min(least, r.share);
    return least;
  }

  allocation(stage: number): SimStageAllocation {
    const st = this.stages[stage]!;
    return {
      replicas: st.desired,
      readyReplicas: st.nReady,
      gpuCores: st.model.kind === 'gpu' ? Math.round(st.share * 100) : null,
      enforcedGpuCores: st.model.kind === 'gpu' ? Math.round(this.leastShare(st) * 100) : null,
      pendingReplicas: st.nUnscheduled,
      clampedReplicas: st.nClamped,
    };
  }

  /**
   * How the pipeline's GPU replicas sit on whole GPUs: each GPU hosting one, with the share its
   * replicas are enforced at (`used`) and what is left (`free`), percent; and the empty GPUs
   * (Infinity when the cluster is autoscaled or unlimited). Shares are summed from the replicas themselves, not
   * from the placement's book-keeping, so a check of `used <= 100` tests the placement.
   */
  gpuPacking(): { gpus: { used: number; free: number }[]; idleGpus: number } {
    const used = new Map<number, number>();
    for (const st of this.stages) {
      for (const r of st.replicas) if (r.gpu >= 0) used.set(r.gpu, (used.get(r.gpu) ?? 0) + r.share * 100);
    }
    const gpus = [...used.entries()].sort((a, b) => a[0] - b[0]).map(([g, u]) => ({ used: Math.round(u * 1e6) / 1e6, free: 100 - this.gpus.used[g]! }));
    return { gpus, idleGpus: this.gpus.idleGpus };
  }

  /** Share-priced spend, $/hour: every replica that exists (pending, starting, ready, draining) at its stage's share. */
  get costRate(): number {
    return this.costRatePerHour;
  }

  /** Packed spend, $/hour: whole GPUs hosting at least one replica, and every replica placed (not one still Pending for room). */
  get packedCostRate(): number {
    return this.packedRatePerHour;
  }

  /** Share-priced dollars spent so far. */
  get cost(): number {
    return this.costDollars + (this.costRatePerHour * (this.now - this.costT)) / 3_600_000;
  }

  /** Packed dollars spent so far. */
  get packedCost(): number {
    return this.packedDollars + (this.packedRatePerHour * (this.now - this.costT)) / 3_600_000;
  }

  /** Time-average and peak of the GPUs in use so far. */
  gpuUse(): { meanGpusInUse: number; peakGpusInUse: number } {
    const ms = this.gpusInUseMs + this.gpus.gpusInUse * (this.now - this.costT);
    return { meanGpusInUse: this.now > 0 ? ms / this.now : this.gpus.gpusInUse, peakGpusInUse: this.peakGpusInUse };
  }

  /** Requests that arrived and have neither completed nor been dropped. */
  get inSystem(): number {
    return this.arrived - this.completed - this.dropped;
  }

  /** Stage totals, with the time integrals brought up to now. */
  stageTotals(stage: number): StageTotals {
    const st = this.stages[stage]!;
    this.advance(st);
    return { ...st.totals };
  }

  /**
   * Ground truth: the stage with the highest offered load over capacity, where the offered load
   * is the workload's expected rate over [t0, now] (every request visits every stage) and the
   * capacity is ready replicas x full-batch throughput at the current share.
   */
  groundTruthBottleneck(t0: number): { stage: number; ratios: number[] } {
    const lambda = Math.max(this.workload.meanRate(t0, this.now), 1e-9);
    let best = 0;
    let bestRatio = -1;
    const ratios: number[] = [];
    for (const st of this.stages) {
      const capacity = st.nClamped === 0 ? st.nReady * maxThroughputPerReplica(st.model, st.share) : this.readyCapacity(st);
      const ratio = capacity > 0 ? lambda / capacity : Infinity;
      ratios.push(ratio);
      if (ratio > bestRatio) {
        bestRatio = ratio;
        best = st.model.index;
      }
    }
    return { stage: best, ratios };
  }

  /** Full-batch throughput of a stage's ready replicas, each at the share it is enforced at. */
  private readyCapacity(st: StageState): number {
    let c = 0;
    for (const r of st.replicas) if (r.state === R_READY) c += maxThroughputPerReplica(st.model, r.share);
    return c;
  }

  /** Requests still in the system that are already older than the SLO (they count as violations). */
  staleInSystem(): number {
    let n = 0;
    for (let id = 0; id < this.highWater; id++) {
      if (this.reqState[id] === Q_ACTIVE && this.now - this.reqArrive[id]! > this.sloMs) n++;
    }
    return n;
  }

  /** Close the run: bring every integral up to the end. */
  finish(): void {
    this.runUntil(this.durationMs);
    this.touchCost();
    for (const st of this.stages) this.advance(st);
  }

  /** All recorded end-to-end latencies of completed requests (ms), in completion order. */
  allLatencies(): Float64Array {
    const total = this.latencies.reduce((n, c) => n + c.length, 0) + this.latencyPos;
    const out = new Float64Array(total);
    let o = 0;
    for (const c of this.latencies) {
      out.set(c, o);
      o += c.length;
    }
    if (this.latencyChunk) out.set(this.latencyChunk.subarray(0, this.latencyPos), o);
    return out;
  }

  // ---- requests ---------------------------------------------------------------------------

  private growRequests(n: number): void {
    const ns = this.nStages;
    const grow = <T extends Float64Array | Int32Array | Uint8Array>(a: T, make: (len: number) => T, per = 1): T => {
      const b = make(n * per);
      b.set(a as never);
      return b;
    };
    this.reqArrive = grow(this.reqArrive, (l) => new Float64Array(l));
    this.reqState = grow(this.reqState, (l) => new Uint8Array(l).fill(Q_FREE));
    this.reqRefs = grow(this.reqRefs, (l) => new Int32Array(l));
    this.reqSinks = grow(this.reqSinks, (l) => new Int32Array(l));
    this.reqJoin = grow(this.reqJoin, (l) => new Int32Array(l), ns);
    this.reqEnter = grow(this.reqEnter, (l) => new Float64Array(l), ns);
    this.free = grow(this.free, (l) => new Int32Array(l));
    this.cap = n;
  }

  private allocRequest(): number {
    if (this.nFree > 0) return this.free[--this.nFree]!;
    if (this.highWater === this.cap) this.growRequests(this.cap * 2);
    return this.highWater++;
  }

  private freeRequest(id: number): void {
    this.reqState[id] = Q_FREE;
    this.free[this.nFree++] = id;
  }

  private onArrival(): void {
    const now = this.now;
    const id = this.allocRequest();
    this.reqArrive[id] = now;
    this.reqState[id] = Q_ACTIVE;
    this.reqRefs[id] = 0;
    this.reqSinks[id] = this.sinks;
    const base = id * this.nStages;
    for (let s = 0; s < this.nStages; s++) this.reqJoin[base + s] = this.stages[s]!.model.upstream.length;
    this.arrived++;
    this.bArrivals++;
    const entries = this.entries;
    for (let i = 0; i < entries.length; i++) {
      if (this.reqState[id] !== Q_ACTIVE) break;
      this.enqueue(this.stages[entries[i]!]!, id);
    }
    const next = this.arrivals.next(now);
    if (next < this.durationMs) this.q.push(next, EV_ARRIVAL, 0, null);
  }

  private enqueue(st: StageState, id: number): void {
    st.totals.arrivals++;
    st.bucket.arrivals++;
    if (st.qLen >= st.queueCapacity) {
      this.drop(id, st);
      if (this.reqRefs[id] === 0) this.freeRequest(id);
      return;
    }
    this.advance(st);
    if (st.qLen === st.queue.length) {
      const bigger = new Int32Array(st.queue.length * 2);
      for (let i = 0; i < st.qLen; i++) bigger[i] = st.queue[(st.qHead + i) % st.queue.length]!;
      st.queue = bigger;
      st.qHead = 0;
    }
    let tail = st.qHead + st.qLen;
    if (tail >= st.queue.length) tail -= st.queue.length;
    st.queue[tail] = id;
    st.qLen++;
    st.inStage++;
    this.reqRefs[id]!++;
    this.reqEnter[id * this.nStages + st.model.index] = this.now;
    if (st.idle.length > 0) this.dispatch(st);
  }

  /** Mark a request dropped (once) and charge the drop to the stage where it happened. */
  private drop(id: number, st: StageState): void {
    if (this.reqState[id] !== Q_ACTIVE) return;
    this.reqState[id] = Q_DROPPED;
    this.dropped++;
    this.bDropped++;
    st.totals.drops++;
    st.bucket.drops++;
  }

  /** Take the queue head out of the stage; returns it, or -1 when it was dropped or already dead. */
  private takeHead(st: StageState): number {
    const id = st.queue[st.qHead]!;
    st.qHead = st.qHead + 1 === st.queue.length ? 0 : st.qHead + 1;
    st.qLen--;
    if (this.reqState[id] === Q_ACTIVE && this.now - this.reqArrive[id]! <= this.requestTimeoutMs) return id;
    if (this.reqState[id] === Q_ACTIVE) this.drop(id, st);
    st.inStage--;
    st.totals.discarded++;
    st.totals.discardedSumMs += this.now - this.reqEnter[id * this.nStages + st.model.index]!;
    if (--this.reqRefs[id]! === 0) this.freeRequest(id);
    return -1;
  }

  private dispatch(st: StageState): void {
    while (st.idle.length > 0 && st.qLen > 0) {
      if (st.batchTimeoutMs > 0 && st.qLen < st.maxBatch) {
        // Wait for a full batch until the oldest live request has waited batchTimeoutMs.
        const head = st.queue[st.qHead]!;
        if (this.reqState[head] !== Q_ACTIVE || this.now - this.reqArrive[head]! > this.requestTimeoutMs) {
          this.advance(st);
          this.takeHead(st);
          continue;
        }
        const due = this.reqEnter[head * this.nStages + st.model.index]! + st.batchTimeoutMs;
        if (this.now < due) {
          if (st.timerAt !== due) {
            st.timerAt = due;
            this.q.push(due, EV_BATCH_TIMER, st.model.index, null);
          }
          return;
        }
      }
      this.startBatch(st, st.idle.pop()!);
    }
  }

  private startBatch(st: StageState, r: Replica): void {
    this.advance(st);
    const now = this.now;
    const ns = this.nStages;
    const s = st.model.index;
    let b = 0;
    while (b < st.maxBatch && st.qLen > 0) {
      const id = this.takeHead(st);
      if (id < 0) continue;
      r.batch[b++] = id;
      st.totals.waitSumMs += now - this.reqEnter[id * ns + s]!;
    }
    if (b === 0) {
      st.idle.push(r);
      return;
    }
    st.totals.started += b;
    st.totals.batches++;
    st.bucket.batches++;
    r.batchLen = b;
    r.batchStart = now;
    r.busy = true;
    st.nBusyReady++;
    st.nBusyAll++;
    const mean = (st.baseMs + st.perItemMs * b) / r.share;
    const t = st.exponential ? this.serviceRng.exponential(mean) : mean * this.serviceRng.lognormalFactor(st.sigma);
    this.q.push(now + t, EV_BATCH_DONE, r.gen, r);
  }

  private onBatchDone(r: Replica, gen: number): void {
    if (r.gen !== gen) return;
    const st = this.stages[r.stage]!;
    this.advance(st);
    const now = this.now;
    const ns = this.nStages;
    const s = r.stage;
    const downstream = st.model.downstream;
    const hist = st.bucket.latency;
    r.busy = false;
    st.nBusyAll--;
    if (r.state === R_READY) st.nBusyReady--;
    st.bucket.batchesDone++;
    st.bucket.batchItems += r.batchLen;
    st.bucket.batchServiceMs += now - r.batchStart;
    for (let i = 0; i < r.batchLen; i++) {
      const id = r.batch[i]!;
      st.inStage--;
      const sojourn = now - this.reqEnter[id * ns + s]!;
      st.totals.completions++;
      st.totals.sojournSumMs += sojourn;
      st.bucket.completions++;
      hist[bucketOf(sojourn)]!++;
      this.reqRefs[id]!--;
      if (this.reqState[id] === Q_ACTIVE) {
        if (downstream.length === 0) {
          if (--this.reqSinks[id]! === 0) this.complete(id);
        } else {
          for (let d = 0; d < downstream.length; d++) {
            const ds = downstream[d]!;
            if (--this.reqJoin[id * ns + ds]! === 0 && this.reqState[id] === Q_ACTIVE) this.enqueue(this.stages[ds]!, id);
          }
        }
      }
      if (this.reqRefs[id] === 0 && this.reqState[id] !== Q_ACTIVE && this.reqState[id] !== Q_FREE) this.freeRequest(id);
    }
    r.batchLen = 0;
    if (r.state === R_DRAINING) {
      this.touchCost();
      r.state = R_GONE;
      st.nDraining--;
      st.replicas.splice(st.replicas.indexOf(r), 1);
      if (r.gpu >= 0) {
        this.unbind(st, r);
        this.placeWaiting();
      }
      this.computeCostRate();
      return;
    }
    st.idle.push(r);
    this.dispatch(st);
  }

  private complete(id: number): void {
    this.reqState[id] = Q_DONE;
    const latency = this.now - this.reqArrive[id]!;
    this.completed++;
    this.bCompleted++;
    this.bLatency[bucketOf(latency)]!++;
    if (latency > this.sloMs) {
      this.violations++;
      this.bViolations++;
    }
    if (this.keepLatencies) {
      if (this.latencyChunk === null || this.latencyPos === this.latencyChunk.length) {
        if (this.latencyChunk !== null) this.latencies.push(this.latencyChunk);
        this.latencyChunk = new Float64Array(65536);
        this.latencyPos = 0;
      }
      this.latencyChunk[this.latencyPos++] = latency;
    }
  }

  // ---- replicas ---------------------------------------------------------------------------

  /**
   * Scale down by one, as a ReplicaSet picks: one Pending for lack of room first, then pending,
   * then starting (newest first), then a ready one: the lowest pod-deletion-cost first, which the
   * node agent sets on a GPU replica to the share the rest of its namespace holds on its GPU
   * (deletion-cost.ts in the device plugin; one pipeline per simulation, so every other replica
   * counts), so one alone on its GPU goes first and frees it; among equal costs idle before
   * busy (drained; it keeps its GPU until done).
   */
  private removeOne(st: StageState): void {
    if (st.nUnscheduled > 0) {
      for (let i = st.replicas.length - 1; i >= 0; i--) {
        const r = st.replicas[i]!;
        if (!r.unscheduled) continue;
        this.unbind(st, r);
        st.nPending--;
        r.state = R_GONE;
        r.gen++;
        st.replicas.splice(i, 1);
        return;
      }
    }
    for (const phase of [R_PENDING, R_STARTING]) {
      for (let i = st.replicas.length - 1; i >= 0; i--) {
        const r = st.replicas[i]!;
        if (r.state === phase) {
          if (phase === R_PENDING) st.nPending--;
          else st.nStarting--;
          this.unbind(st, r);
          r.state = R_GONE;
          r.gen++;
          st.replicas.splice(i, 1);
          return;
        }
      }
    }
    const cheapest = this.leastDeletionCost(st);
    for (let i = st.idle.length - 1; i >= 0; i--) {
      const r = st.idle[i]!;
      if (this.deletionCost(r) > cheapest) continue;
      st.idle.splice(i, 1);
      this.unbind(st, r);
      r.state = R_GONE;
      r.gen++;
      st.nReady--;
      st.replicas.splice(st.replicas.indexOf(r), 1);
      return;
    }
    for (let i = st.replicas.length - 1; i >= 0; i--) {
      const r = st.replicas[i]!;
      if (r.state === R_READY && r.busy && this.deletionCost(r) <= cheapest) {
        r.state = R_DRAINING;
        st.nReady--;
        st.nBusyReady--;
        st.nDraining++;
        return;
      }
    }
  }

  /** A ready replica's pod-deletion-cost: the percent of its GPU that other replicas hold (0 off a GPU). */
  private deletionCost(r: Replica): number {
    return r.gpu < 0 ? 0 : this.gpus.used[r.gpu]! - r.occupied;
  }

  private leastDeletionCost(st: StageState): number {
    let least = Infinity;
    for (const r of st.replicas) if (r.state === R_READY) least = Math.min(least, this.deletionCost(r));
    return least;
  }

  private onStarting(r: Replica, gen: number): void {
    if (r.gen !== gen || r.state !== R_PENDING) return;
    const st = this.stages[r.stage]!;
    this.advance(st);
    r.state = R_STARTING;
    st.nPending--;
    st.nStarting++;
    const cold = st.model.coldStartMs * this.serviceRng.lognormalFactor(0.1);
    this.q.push(this.now + cold, EV_READY, r.gen, r);
  }

  private onReady(r: Replica, gen: number): void {
    if (r.gen !== gen || r.state !== R_STARTING) return;
    const st = this.stages[r.stage]!;
    this.advance(st);
    r.state = R_READY;
    st.nStarting--;
    st.nReady++;
    st.idle.push(r);
    this.dispatch(st);
  }

  // ---- integrals, cost and scrapes ----------------------------------------------------------

  /** Bring a stage's time integrals up to now; call before any change they depend on. */
  private advance(st: StageState): void {
    const dt = this.now - st.lastT;
    if (dt <= 0) return;
    st.lastT = this.now;
    const t = st.totals;
    t.inStageMs += st.inStage * dt;
    t.queuedMs += st.qLen * dt;
    t.busyReadyMs += st.nBusyReady * dt;
    t.readyMs += st.nReady * dt;
    t.chargedMs += st.replicas.length * dt;
    t.shareMs += st.share * st.replicas.length * dt;
    t.unscheduledMs += st.nUnscheduled * dt;
    const b = st.bucket;
    b.busyReadyMs += st.nBusyReady * dt;
    b.busyAllMs += st.nBusyAll * dt;
    b.readyMs += st.nReady * dt;
  }

  /** Both cost rates, from the replicas that exist now; call after any change to them (touchCost() before). */
  private computeCostRate(): void {
    const { gpuHour, replicaHour } = this.pipeline.cost;
    let rate = 0;
    let placed = 0;
    for (const st of this.stages) {
      rate += st.replicas.length * (replicaHour + (st.model.kind === 'gpu' ? gpuHour * st.share : 0));
      placed += st.replicas.length - st.nUnscheduled;
    }
    this.costRatePerHour = rate;
    const inUse = this.gpus.gpusInUse;
    this.packedRatePerHour = placed * replicaHour + inUse * gpuHour;
    if (inUse > this.peakGpusInUse) this.peakGpusInUse = inUse;
  }

  private touchCost(): void {
    const dt = this.now - this.costT;
    this.costDollars += (this.costRatePerHour * dt) / 3_600_000;
    this.packedDollars += (this.packedRatePerHour * dt) / 3_600_000;
    this.gpusInUseMs += this.gpus.gpusInUse * dt;
    this.costT = this.now;
  }

  private onScrapeEvent(): void {
    this.touchCost();
    const stages: StageBucket[] = [];
    for (const st of this.stages) {
      this.advance(st);
      // Clients give up on requests that wait too long even where no replica is free to notice:
      // expire the queue's head so that a stalled stage shows its drops.
      while (st.qLen > 0) {
        const head = st.queue[st.qHead]!;
        if (this.reqState[head] === Q_ACTIVE && this.now - this.reqArrive[head]! <= this.requestTimeoutMs) break;
        this.takeHead(st);
      }
      st.bucket.queueLength = st.qLen;
      stages.push(st.bucket);
      st.bucket = emptyStageBucket();
    }
    const bucket: ScrapeBucket = {
      index: ++this.scrapeIndex,
      time: this.now,
      stages,
      arrivals: this.bArrivals,
      completed: this.bCompleted,
      dropped: this.bDropped,
      violations: this.bViolations,
      latency: this.bLatency,
      cost: this.costDollars - this.bCostStart,
      packedCost: this.packedDollars - this.bPackedStart,
      replicas: this.stages.map((s) => s.desired),
      readyReplicas: this.stages.map((s) => s.nReady),
      gpuCores: this.stages.map((s) => (s.model.kind === 'gpu' ? Math.round(s.share * 100) : null)),
      pendingReplicas: this.stages.map((s) => s.nUnscheduled),
      gpusInUse: this.gpus.gpusInUse,
    };
    this.bArrivals = 0;
    this.bCompleted = 0;
    this.bDropped = 0;
    this.bViolations = 0;
    this.bLatency = newHistogram();
    this.bCostStart = this.costDollars;
    this.bPackedStart = this.packedDollars;
    const next = this.now + this.scrapeIntervalMs;
    if (next <= this.durationMs) this.q.push(next, EV_SCRAPE, 0, null);
    this.onScrape?.(bucket);
  }
}
