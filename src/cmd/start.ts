// `sair start`: the policy server's controller, runtime and API on the embedded simulator, so one
// command shows SAIR autoscaling a multi-stage pipeline under bursty load. The only command that
// joins the policy and the simulator.
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import type { Command } from '../common/command.js';
import { fields, helpText, loadConfig, type ConfigOf } from '../common/config.js';
import { ValidationError } from '../common/errors.js';
import { createLogger, LOG_LEVELS } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import { untilSignal } from '../common/shutdown.js';
import type { Clock } from '../core/ports.js';
import type { SairController } from '../policy/controller.js';
import { policyConfigSpec, settingsFromConfig } from '../policy/settings.js';
import type { DecisionRecord } from '../policy/types.js';
import { PolicyHistory } from '../policy-server/api/history.js';
import { startApiServer, type RunningServer } from '../policy-server/api/server.js';
import { createPolicyLoop } from '../policy-server/wiring.js';
import { builtinPipeline, BUILTIN_PIPELINES } from '../sim/builtin-pipelines.js';
import { builtinWorkload, BUILTIN_WORKLOADS } from '../sim/builtin-workloads.js';
import { SimCluster } from '../sim/cluster.js';
import { SimMetrics } from '../sim/metrics.js';
import { pipelineSpec } from '../sim/pipeline.js';
import { Simulation } from '../sim/simulator.js';
import { singleShard } from '../policy-server/runtime.js';
import { pickPolicy, serverSpec } from './policy-options.js';

const startSpec = {
  ...serverSpec,
  logLevel: { ...serverSpec.logLevel, help: 'log level (decisions are also printed one per line unless --quiet)', schema: z.enum(LOG_LEVELS).default('warn') },
  host: { env: 'SAIR_POLICY_HOST', flag: '--host', form: 'an address to listen on', help: 'listen address', schema: fields.string('127.0.0.1') },
  pipeline: { env: 'SAIR_SIM_PIPELINE', flag: '--pipeline', form: `one of ${BUILTIN_PIPELINES.join(', ')}`, help: 'built-in pipeline to run', schema: fields.string('nlp-chain') },
  workload: { env: 'SAIR_SIM_WORKLOAD', flag: '--workload', form: `one of ${BUILTIN_WORKLOADS.join(', ')}`, help: 'built-in load pattern', schema: fields.string('bursty') },
  speed: { env: 'SAIR_SIM_SPEED', flag: '--speed', form: 'a number from 0.1 to 10000 (1 = real time)', help: 'simulated seconds per wall second', schema: z.coerce.number().min(0.1).max(10_000).default(10) },
  seed: { env: 'SAIR_SIM_SEED', flag: '--seed', form: 'a positive integer', help: 'random seed of the load and the selector', schema: fields.positiveInt(1) },
  durationSeconds: {
    env: 'SAIR_SIM_DURATION_SECONDS',
    flag: '--duration-seconds',
    form: 'an integer from 60 to 604800',
    help: 'simulated time to run; the server stays up afterwards',
    schema: z.coerce.number().int().min(60).max(604_800).default(86_400),
  },
  quiet: { env: 'SAIR_QUIET', flag: '--quiet', form: 'true or false', help: 'no line per decision on stdout', schema: fields.boolean(false) },
  ...policyConfigSpec,
};

export type StartConfig = ConfigOf<typeof startSpec>;

/** `sair start` settings from env and flags (defaults for the rest). */
export function loadStartConfig(env: Record<string, string | undefined>, argv: readonly string[]): StartConfig {
  return loadConfig(startSpec, env, argv);
}

export interface EmbeddedServer {
  url: string;
  server: RunningServer;
  simulation: Simulation;
  controller: SairController;
  history: PolicyHistory;
  /** Stop the simulation and the ticks; the API keeps serving what it has. */
  pause(): Promise<void>;
  stop(): Promise<void>;
}

/** The policy server on the embedded simulator, paced at `speed` simulated seconds per second. */
export async function startEmbedded(cfg: StartConfig, out: NodeJS.WritableStream = process.stdout): Promise<EmbeddedServer> {
  const logger = createLogger('policy', cfg.logLevel);
  const model = builtinPipeline(cfg.pipeline);
  if (!model) throw new ValidationError('--pipeline (env SAIR_SIM_PIPELINE)', `one of ${BUILTIN_PIPELINES.join(', ')}`, cfg.pipeline);
  const workload = builtinWorkload(cfg.workload, { referenceRate: model.referenceRate, seed: cfg.seed });
  if (!workload) throw new ValidationError('--workload (env SAIR_SIM_WORKLOAD)', `one of ${BUILTIN_WORKLOADS.join(', ')}`, cfg.workload);
  const settings = settingsFromConfig(pickPolicy(cfg));
  const spec = pipelineSpec(model);
  const scrapeIntervalMs = 15_000;
  const durationMs = cfg.durationSeconds * 1000;
  const sink: { metrics?: SimMetrics } = {};
  const simulation = new Simulation({
    pipeline: model,
    workload,
    seed: cfg.seed,
    durationMs,
    scrapeIntervalMs,
    keepLatencies: false,
    onScrape: (b) => sink.metrics?.record(b),
  });
  const cluster = new SimCluster(simulation, spec);
  const metrics = new SimMetrics(simulation, cluster, spec, { scrapeIntervalMs, windowMs: 60_000, lagMs: 0 });
  sink.metrics = metrics;

  // Simulated time follows the wall clock at `speed`, in slices of at most 15 ms of CPU so the
  // HTTP server and the controller stay responsive. A machine too slow for the speed runs the
  // simulation slower (and says so once) instead of piling up a debt it can never pay.
  let wallStart = Date.now();
  let finished = false;
  let behind = false;
  const advance = () => {
    const target = Math.min(durationMs, (Date.now() - wallStart) * cfg.speed);
    const deadline = performance.now() + 15;
    while (simulation.now < target && performance.now() < deadline) simulation.runUntil(Math.min(target, simulation.now + 1_000));
    // A slip of a few slices is caught up next time; a lag of seconds means the machine is too slow.
    if ((target - simulation.now) / cfg.speed > 2_000) {
      wallStart += (target - simulation.now) / cfg.speed;
      if (!behind) {
        behind = true;
        out.write(`This machine cannot simulate ${cfg.speed}x real time; the simulation runs slower.\n`);
      }
    }
    if (!finished && simulation.now >= durationMs) {
      finished = true;
      out.write(`The simulation reached its end (${cfg.durationSeconds} simulated seconds); the dashboard keeps serving. Ctrl-C to stop.\n`);
    }
  };
  const clock: Clock = {
    now: () => simulation.now,
    sleep: (ms) => new Promise((r) => setTimeout(r, Math.max(1, ms / cfg.speed))),
  };

  const registry = createRegistry('policy');
  const history = new PolicyHistory();
  const stageName = (i: number | null) => (i === null ? '-' : `${i}:${spec.stages[i]?.name ?? '?'}`);
  const printDecision = (r: DecisionRecord) => {
    const t = new Date(r.time).toISOString().slice(11, 19);
    // Each change says who produced it: the selector, or a floor (an SLO emergency, a forecast, the reserve).
    const tag = (i: number) => (r.appliedBy[i] === 'floor' ? ' [floor]' : '');
    // A tick whose changes are all the floors' was no selector's doing: say so instead of the selector's name.
    const who = r.appliedBy.length > 0 && r.appliedBy.every((x) => x === 'floor') ? 'floor' : r.selector;
    const applied =
      r.applied.length === 0 ? 'hold' : r.applied.map((a, i) => (a.kind === 'replicas' ? `s${a.stage} replicas ${a.replicas}` : a.kind === 'gpuCores' ? `s${a.stage} gpu ${a.gpuCores}%` : 'hold') + tag(i)).join(', ');
    const p99 = r.p99Ms === null ? 'n/a' : Number.isFinite(r.p99Ms) ? `${Math.round(r.p99Ms)}ms` : 'unbounded (drops)';
    out.write(`sim ${t}  p99 ${p99} (SLO ${r.sloP99Ms}ms)  cost $${r.costRate.toFixed(2)}/h packed, $${simulation.costRate.toFixed(2)}/h share-priced  bottleneck ${stageName(r.bottleneck)}  ${who}: ${applied}\n`);
  };
  const ports = { cluster, metrics, clock, logger, registry, history };
  const { controller, runtime, close } = createPolicyLoop(ports, settings, {
    seed: cfg.seed,
    snapshotPath: cfg.snapshotPath,
    ownership: singleShard(() => true),
    pollMs: 1_000,
    backoff: { baseMs: 5_000, maxMs: 60_000 },
    onDecision: cfg.quiet ? undefined : printDecision,
  });
  const server = await startApiServer(
    {
      history,
      registry,
      logger,
      state: {
        ready: () => ({ ready: true, reason: '' }),
        leader: () => true,
        identity: `embedded simulator: ${model.name} under ${cfg.workload} load at ${cfg.speed}x`,
        selector: settings.selector,
        invalid: () => [],
        source: 'simulator',
      },
    },
    cfg.port,
    cfg.host,
  );
  // Time starts when the server is up, so a failed start leaves nothing running.
  wallStart = Date.now();
  const pacer = setInterval(advance, 20);
  runtime.start();
  out.write(
    `SAIR policy server on the embedded simulator: pipeline ${model.name} (${spec.stages.length} stages, SLO ${spec.sloP99Ms} ms), ` +
      `${cfg.workload} load, ${settings.selector} selector, ${cfg.speed}x real time.\n` +
      `Dashboard: ${server.url}/   API: ${server.url}/api/pipelines  ${server.url}/api/decisions  ${server.url}/metrics\n`,
  );
  let paused: Promise<void> | undefined;
  const pause = () =>
    (paused ??= (async () => {
      await runtime.stop();
      clearInterval(pacer);
      await close();
    })());
  return {
    url: server.url,
    server,
    simulation,
    controller,
    history,
    pause,
    async stop() {
      await pause();
      await server.close();
    },
  };
}

export const command: Command = {
  name: 'start',
  summary: 'the policy server on the embedded simulator (a multi-stage pipeline under bursty load) with its dashboard',
  help: () => helpText('start', command.summary, startSpec),
  async run(argv, env) {
    const cfg = loadStartConfig(env, argv);
    const embedded = await startEmbedded(cfg);
    await untilSignal(createLogger('policy', cfg.logLevel));
    await embedded.stop();
  },
};
