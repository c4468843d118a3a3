/**
 * The daemon's structured log: JSON lines through pino, every string redacted (no password
 * from a URL or the environment ever reaches the log).
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { redact } from '../services/redact.js';

function redactValue(value: unknown): unknown {
  if (typeof value === 'string') return redact(value);
  if (Array.isArray(value)) return value.map(redactValue);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValue(v)]));
  return value;
}

export function daemonLogger(destination?: DestinationStream, level = 'info'): Logger {
  return pino({
    level,
    base: { pid: process.pid, name: 'jarvis-db' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }), log: (object) => redactValue(object) as Record<string, unknown> },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((a) => (typeof a === 'string' ? redact(a) : a)) as Parameters<typeof method>);
      },
    },
  }, destination);
}
