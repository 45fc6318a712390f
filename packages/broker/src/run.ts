// `runBroker`: the broker as a process's main program. Logs JSON lines to stdout (pino), prints
// `{"msg":"broker started","port":N,"httpPort":M,...}` once listening, and shuts down in a
// controlled way on SIGTERM or SIGINT (Broker.shutdownControlled: /ready false, leaderships
// handed over, deregistered, in-flight requests finished, flushed), resolving when the broker is
// closed (the caller exits 0). Past `shutdown.timeoutMs` it exits anyway with code 1, logging
// what was left. A second signal during shutdown exits at once with code 1. A promise rejection nothing handled (a bug: every
// request's failure is answered where it happens) is logged and counted, and the broker keeps
// serving: it must not take down every partition for one request's failure.
// SIGHUP reads the configuration again (`reload`): the dynamic settings whose value changed
// (ops/dynamic-config.ts) are recorded for this broker in the controller's log and applied
// without a restart; a changed setting that is not dynamic is logged as waiting for a restart;
// an invalid file is logged naming the key, and nothing changes.
import pino from 'pino';
import { Broker } from './broker.js';
import type { BrokerConfig } from './config.js';
import { isDynamicBrokerKey, staticDynamicValues } from './ops/dynamic-config.js';
import { dynamicLevelOptions } from './ops/log-level.js';
import { processThreadPoolSize } from './thread-pool.js';
import { tuneBrokerHeap } from './v8-heap.js';

export interface RunBrokerOptions {
  /** Reads the configuration again (SIGHUP). */
  readonly reload?: () => BrokerConfig;
}

/** The leaf keys of `a` and `b` (dotted) whose values differ. */
function changedKeys(a: BrokerConfig, b: BrokerConfig): string[] {
  const out: string[] = [];
  const walk = (x: unknown, y: unknown, prefix: string): void => {
    if (typeof x === 'object' && x !== null && !Array.isArray(x) && prefix.split('.').length < 2) {
      for (const k of Object.keys(x)) {
        walk(
          (x as Record<string, unknown>)[k],
          (y as Record<string, unknown>)?.[k],
          prefix === '' ? k : `${prefix}.${k}`,
        );
      }
      return;
    }
    if (JSON.stringify(x) !== JSON.stringify(y)) out.push(prefix);
  };
  walk(a, b, '');
  return out;
}

export async function runBroker(
  config: BrokerConfig,
  options: RunBrokerOptions = {},
): Promise<void> {
  // Before the broker allocates anything: fewer full GCs under load (v8-heap.ts).
  const heapGrowingPercent = tuneBrokerHeap();
  // 'silent' is silent: the started line below has its own logger at info. The level is a
  // dynamic setting (ops/log-level.ts).
  const logger = pino({ ...dynamicLevelOptions(config.logLevel), base: { pid: process.pid } });
  // What SIGHUP compares a re-read file with: the configuration as the process loaded it.
  let loaded = structuredClone(config);
  let started: Broker | null = null;
  const onUnhandledRejection = (reason: unknown): void => {
    started?.metrics.unhandledRejections.inc();
    logger.error(
      { err: reason },
      'unhandled promise rejection (a bug): logged, broker keeps running',
    );
  };
  process.on('unhandledRejection', onUnhandledRejection);
  const broker = await Broker.start(config, { logger }).catch((err: unknown) => {
    process.off('unhandledRejection', onUnhandledRejection);
    throw err;
  });
  started = broker;
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, 'shutting down');
      // Past shutdown.timeoutMs the process exits anyway (code 1), saying what was left.
      const forced = setTimeout(() => {
        logger.error(
          { signal, timeoutMs: config.shutdown.timeoutMs, left: broker.shutdownLeft() },
          'controlled shutdown did not finish within shutdown.timeoutMs: exiting anyway',
        );
        process.exit(1);
      }, config.shutdown.timeoutMs);
      forced.unref();
      broker.shutdownControlled().then(
        (left) => {
          clearTimeout(forced);
          if (left.partitionsLeft.length > 0 || left.controllerLeft) {
            logger.warn(left, 'shutdown: some leaderships could not be handed over');
          }
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
          process.off('SIGHUP', onHangUp);
          process.off('unhandledRejection', onUnhandledRejection);
          resolve();
        },
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    const onHangUp = (): void => {
      if (options.reload === undefined || stopping) return;
      let next: BrokerConfig;
      try {
        next = options.reload();
      } catch (err) {
        logger.error({ err }, 'SIGHUP: the configuration does not load; nothing changed');
        return;
      }
      const changed = changedKeys(loaded, next);
      const dynamic = changed.filter(isDynamicBrokerKey);
      const later = changed.filter((k) => !isDynamicBrokerKey(k));
      if (later.length > 0) {
        logger.warn({ keys: later }, 'SIGHUP: these settings changed but take effect at restart');
      }
      if (dynamic.length === 0) return;
      const values = staticDynamicValues(next);
      const changes: Record<string, string> = {};
      for (const k of dynamic) changes[k] = String(values.get(k));
      broker.alterOwnConfig(changes).then(
        () => {
          loaded = structuredClone(next);
          logger.info({ changes }, 'SIGHUP: dynamic settings recorded and applied');
        },
        (err: unknown) => logger.error({ err, changes }, 'SIGHUP: recording the settings failed'),
      );
    };
    // Only with a way to re-read: otherwise SIGHUP keeps its default (the process ends).
    if (options.reload !== undefined) process.on('SIGHUP', onHangUp);
    // Only now, with the handlers in place: a supervisor may signal as soon as it reads this.
    // The started line is printed at any log level: supervisors and the CLI wait for it.
    pino({ level: 'info', base: { pid: process.pid } }).info(
      {
        port: broker.address.port,
        httpPort: broker.httpAddress?.port ?? null,
        kafkaPort: broker.kafkaAddress?.port ?? null,
        host: broker.address.host,
        dataDir: config.dataDir,
        nodeId: config.nodeId,
        uvThreadpoolSize: processThreadPoolSize(),
        heapGrowingPercent,
      },
      'broker started',
    );
  });
}
