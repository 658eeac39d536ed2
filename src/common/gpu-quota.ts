// GPU quota annotations on a pod: `sair.dev/gpu-cores` (percent of one GPU's SM time) and
// `sair.dev/gpu-memory` (a Kubernetes quantity), parsed alike by the webhook (to deny bad values)
// and the node agent (to write control files). Pure; every error names the annotation, the value
// and the accepted form.
import { ValidationError } from './errors.js';

import { ANNOTATION_GPU_CORES, ANNOTATION_GPU_MEMORY } from '../core/names.js';


export const GPU_CORES_FORM = 'an integer from 1 to 100 (percent of one GPU)';
export const GPU_MEMORY_FORM = 'a Kubernetes quantity greater than 0, such as "8Gi", "512Mi" or "2000000000"';

export interface GpuQuota {
  /** Percent of one GPU's SM time, 1..100; 100 when the pod names no share. */
  gpuCores: number;
  /** Device memory quota in bytes; 0n when the pod names none. */
  memoryBytes: bigint;
  /** Whether the pod carried each annotation (so a caller can warn about unused ones). */
  coresSet: boolean;
  memorySet: boolean;
}

export function parseGpuCores(value: string): number {
  if (!/^[0-9]{1,3}$/.test(value)) throw new ValidationError(ANNOTATION_GPU_CORES, GPU_CORES_FORM, value);
  const n = Number(value);
  if (n < 1 || n > 100) throw new ValidationError(ANNOTATION_GPU_CORES, GPU_CORES_FORM, value);
  return n;
}

const BINARY_SUFFIX: Record<string, bigint> = {
  Ki: 1n << 10n,
  Mi: 1n << 20n,
  Gi: 1n << 30n,
  Ti: 1n << 40n,
  Pi: 1n << 50n,
  Ei: 1n << 60n,
};
// Decimal suffixes as a power of ten.
const DECIMAL_SUFFIX: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/**
 * A Kubernetes quantity (the grammar of k8s.io/apimachinery resource.Quantity) in bytes,
 * rounded up to a whole byte as Quantity.Value() does. Throws unless it is greater than 0.
 */
export function parseQuantityBytes(value: string, field = ANNOTATION_GPU_MEMORY, form = GPU_MEMORY_FORM): bigint {
  const m = /^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$/.exec(value);
  if (!m) throw new ValidationError(field, form, value);
  const [intPart = '', fracPart = ''] = m[1]!.split('.');
  let numerator = BigInt((intPart || '0') + fracPart);
  let denominator = 10n ** BigInt(fracPart.length);
  const suffix = m[2] ?? '';
  if (suffix in BINARY_SUFFIX) {
    numerator *= BINARY_SUFFIX[suffix]!;
  } else {
    const exp = suffix.startsWith('e') || suffix.startsWith('E') ? Number(suffix.slice(1)) : DECIMAL_SUFFIX[suffix]!;
    // Quantities beyond 2^63 bytes are not memory sizes; this also bounds the exponent.
    if (!Number.isFinite(exp) || Math.abs(exp) > 30) throw new ValidationError(field, form, value);
    if (exp >= 0) numerator *= 10n ** BigInt(exp);
    else denominator *= 10n ** BigInt(-exp);
  }
  const bytes = (numerator + denominator - 1n) / denominator;
  if (bytes <= 0n || bytes >= 1n << 63n) throw new ValidationError(field, form, value);
  return bytes;
}

/** The pod's quota from its annotations; throws ValidationError on the first bad value. */
export function parseGpuQuota(annotations: Readonly<Record<string, string>> | undefined): GpuQuota {
  const cores = annotations?.[ANNOTATION_GPU_CORES];
  const memory = annotations?.[ANNOTATION_GPU_MEMORY];
  return {
    gpuCores: cores === undefined ? 100 : parseGpuCores(cores),
    memoryBytes: memory === undefined ? 0n : parseQuantityBytes(memory),
    coresSet: cores !== undefined,
    memorySet: memory !== undefined,
  };
}

export type QuotaCheck = { ok: true; quota: GpuQuota } | { ok: false; errors: ValidationError[] };

/** Like parseGpuQuota, but collects every bad annotation instead of throwing on the first. */
export function checkGpuQuota(annotations: Readonly<Record<string, string>> | undefined): QuotaCheck {
  const errors: ValidationError[] = [];
  const attempt = <T>(parse: () => T, fallback: T): T => {
    try {
      return parse();
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      errors.push(err);
      return fallback;
    }
  };
  const cores = annotations?.[ANNOTATION_GPU_CORES];
  const memory = annotations?.[ANNOTATION_GPU_MEMORY];
  const quota: GpuQuota = {
    gpuCores: cores === undefined ? 100 : attempt(() => parseGpuCores(cores), 100),
    memoryBytes: memory === undefined ? 0n : attempt(() => parseQuantityBytes(memory), 0n),
    coresSet: cores !== undefined,
    memorySet: memory !== undefined,
  };
  return errors.length > 0 ? { ok: false, errors } : { ok: true, quota };
}
