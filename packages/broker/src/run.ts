// `runBroker`: the broker as a process's main program. Logs JSON lines to stdout (pino), prints
// `{"msg":"broker started","port":N,"httpPort":M,...}` once listening, and shuts down in a
// controlled way on SIGTERM or SIGINT (Broker.shutdownControlled: /ready false, leaderships
// handed over, deregistered, in-flight requests finished, flushed), resolving when the broker is
// closed (the caller exits 0). Past `shutdown.timeoutMs` it exits anyway with code 1, logging
// what was left. A second signal during shutdown exits at once with code 1. A promise rejection nothing handled (a bug: every
// request's failure is answered where it happens) is logged and counted, and the broker keeps
// serving: it must not take down every partition for one request's failure.
import pino from 'pino';
import { Broker } from './broker.js';
import type { BrokerConfig } from './config.js';

export async function runBroker(config: BrokerConfig): Promise<void> {
  // 'silent' is silent: the started line below has its own logger at info.
  const logger = pino({ level: config.logLevel, base: { pid: process.pid } });
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
    // Only now, with the handlers in place: a supervisor may signal as soon as it reads this.
    // The started line is printed at any log level: supervisors and the CLI wait for it.
    logger.child({}, { level: 'info' }).info(
      {
        port: broker.address.port,
        httpPort: broker.httpAddress?.port ?? null,
        kafkaPort: broker.kafkaAddress?.port ?? null,
        host: broker.address.host,
        dataDir: config.dataDir,
        nodeId: config.nodeId,
      },
      'broker started',
    );
  });
}
