// The built-in workloads, in units of the pipeline's reference rate (1.0 = its referenceRate):
// the paper's Poisson, ramp and burst, and SAIR's own diurnal, bursty (MMPP-2), Gamma renewal and
// spike. A diurnal "day" is compressed to one hour so that a two-hour run sees two of them.
import { buildWorkload, workloadFileSchema, type BuildOptions, type Workload, type WorkloadFile } from './workload.js';
import { validate } from './schema.js';

const definitions: Record<string, unknown> = {
  constant: { kind: 'constant', rate: 1, relative: true, description: 'Evenly spaced arrivals at the reference rate.' },
  poisson: { kind: 'poisson', rate: 1, relative: true, description: "The paper's Poisson: Poisson arrivals at the reference rate." },
  ramp: { kind: 'ramp', from: 0.2, to: 2, rampSeconds: 3600, relative: true, description: "The paper's ramp: 0.2x to 2x the reference rate over an hour, then flat." },
  burst: {
    kind: 'burst',
    base: 0.6,
    peak: 2.2,
    periodSeconds: 600,
    burstSeconds: 60,
    relative: true,
    description: "The paper's burst: 0.6x with a one-minute burst to 2.2x every ten minutes.",
  },
  diurnal: {
    kind: 'diurnal',
    mean: 1,
    amplitude: 0.7,
    periodSeconds: 3600,
    relative: true,
    description: 'A compressed day: sinusoid from 0.3x to 1.7x with a one-hour period (non-homogeneous Poisson).',
  },
  bursty: {
    kind: 'mmpp',
    rates: [0.6, 2],
    meanSojournSeconds: [240, 60],
    relative: true,
    description: 'MMPP-2: 0.6x for about four minutes, then 2x for about one, switching at random.',
  },
  gamma: { kind: 'gamma', rate: 1, cv: 3, relative: true, description: 'Gamma renewal at the reference rate with inter-arrival CV 3 (clumped arrivals).' },
  spike: {
    kind: 'spike',
    base: 0.7,
    multiplier: 3,
    atSeconds: 1200,
    durationSeconds: 180,
    everySeconds: 2400,
    relative: true,
    description: 'A flash crowd: 0.7x with a three-minute spike to 3x at 20 minutes, repeated every 40 minutes.',
  },
};

export const BUILTIN_WORKLOADS = Object.keys(definitions);
/** SAIR's own scenario workloads (the `issue` suite) and the paper's, for --matrix. */
export const MATRIX_WORKLOADS = ['diurnal', 'bursty', 'spike'];
export const PAPER_WORKLOADS = ['poisson', 'ramp', 'burst'];

export function builtinWorkloadFile(name: string): WorkloadFile | undefined {
  const def = definitions[name];
  return def === undefined ? undefined : validate(workloadFileSchema, { name, ...(def as object) }, `built-in workload ${name}`);
}

export function builtinWorkload(name: string, opts: BuildOptions): Workload | undefined {
  const file = builtinWorkloadFile(name);
  return file === undefined ? undefined : buildWorkload(file, opts, name);
}
