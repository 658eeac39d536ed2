// The one way every command waits for SIGTERM or SIGINT. Listening starts when this is called,
// so a signal that arrives while a server is still starting is not lost; the listeners are
// removed once the first signal arrives.
import type { Logger } from './logger.js';

export type ShutdownSignal = 'SIGTERM' | 'SIGINT';

/** Where SIGTERM and SIGINT arrive: the process, or a stand-in in tests. */
export interface SignalSource {
  on(signal: ShutdownSignal, listener: (signal: NodeJS.Signals) => void): unknown;
  off(signal: ShutdownSignal, listener: (signal: NodeJS.Signals) => void): unknown;
}

/** Resolves with the first SIGTERM or SIGINT, logged once as `shutting down`. */
export function untilSignal(logger: Logger, signals: SignalSource = process): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      signals.off('SIGTERM', onSignal);
      signals.off('SIGINT', onSignal);
      logger.info({ signal }, 'shutting down');
      resolve(signal);
    };
    signals.on('SIGTERM', onSignal);
    signals.on('SIGINT', onSignal);
  });
}
