// The process log level as a dynamic setting (issue 12, ops/dynamic-config.ts): the broker
// process's root logger (run.ts) passes every level to a hook that drops what is below the
// threshold here, and every child logger inherits the hook, so one assignment changes the level
// of every logger of the process at once (pino children otherwise keep the level they were
// created with).
import pino from 'pino';
import type { LogLevel } from '../config.js';

const threshold = { value: pino.levels.values.info! };

function levelValue(level: LogLevel): number {
  return level === 'silent' ? Number.POSITIVE_INFINITY : pino.levels.values[level]!;
}

/** The pino options of a root logger whose level follows `setProcessLogLevel`. */
export function dynamicLevelOptions(initial: LogLevel): pino.LoggerOptions {
  threshold.value = levelValue(initial);
  return {
    level: 'trace',
    hooks: {
      logMethod(args, method, level) {
        if (level >= threshold.value) method.apply(this, args);
      },
    },
  };
}

export function setProcessLogLevel(level: LogLevel): void {
  threshold.value = levelValue(level);
}
