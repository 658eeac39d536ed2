// Error types shared by every part. Each message says what was wrong and what to do about it,
// so the edge that catches one can log or return it as-is.

/** A user-supplied value (env, flag, annotation, file, CRD field) was not acceptable. */
export class ValidationError extends Error {
  override readonly name = 'ValidationError';
  constructor(
    /** Where the value came from: `SAIR_PORT`, `--port`, `sair.dev/gpu-cores`, `spec.stages[0].name`. */
    readonly field: string,
    /** The accepted form, e.g. `an integer from 1 to 100`. */
    readonly accepted: string,
    readonly value?: unknown,
  ) {
    super(
      value === undefined
        ? `${field}: missing; expected ${accepted}`
        : `${field}: ${JSON.stringify(value)} is not ${accepted}`,
    );
  }
}

/** Several configuration problems found at start, reported together. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: ValidationError[]) {
    super(`invalid configuration:\n  ${problems.map((p) => p.message).join('\n  ')}`);
  }
}

/** A call to something outside the process (API server, Prometheus, LLM, driver) failed. */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(
    readonly upstream: string,
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(`${upstream}: ${message}`, options);
  }

  /** 409, 429 and 5xx are worth retrying; other statuses will fail again the same way. */
  get retryable(): boolean {
    return this.status === undefined || this.status === 409 || this.status === 429 || this.status >= 500;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A write refused before it was sent: this replica does not hold a valid lease at this moment. */
export class NotLeaderError extends UpstreamError {
  constructor(lease: string, why = 'only the leader changes the cluster') {
    super('sair-policy', `not the holder of a valid Lease ${lease}; ${why}`, 503);
  }

  /** Retrying cannot help: leadership comes from the next lease round, not from another try. */
  override get retryable(): boolean {
    return false;
  }
}
