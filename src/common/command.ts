// The contract between src/cli.ts and each part's entry point.
export interface Command {
  name: string;
  summary: string;
  /** Full --help text. */
  help(): string;
  /** Runs until the process is asked to stop, or resolves to an exit status; rejects on a fatal start-up error. */
  run(argv: readonly string[], env: Record<string, string | undefined>): Promise<void | number>;
}
