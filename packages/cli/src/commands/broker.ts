// `streambus broker start` (the broker as this process's main program, JSON logs on stdout) and
// `streambus dev` (the embedded local default that `npm start` runs: a broker on 127.0.0.1:7070
// with HTTP on 7071, data under one directory and topics created on first use, printing how to
// produce and consume, stopped gracefully by Ctrl-C or SIGTERM; with `--nodes N`, N broker
// processes forming one cluster, dev-cluster.ts). Both read STREAMBUS_*
// variables through loadConfig, which ignores the client's (STREAMBUS_BOOTSTRAP) as the inner
// entry point does; a bad configuration is a ConfigError (exit 2, see output.ts).
import { existsSync } from 'node:fs';
import { isAbsolute, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { UsageError } from '../output.js';
import { parseIntArg } from './args.js';
import { DEV_NODES_MAX, runDevCluster } from './dev-cluster.js';

const LOG_LEVEL_HELP = 'fatal, error, warn, info, debug, trace or silent';

/**
 * How to run this CLI from the current directory, for the commands the dev banner prints: the
 * repository's `./streambus` launcher when this is a checkout (it needs neither pnpm nor npm),
 * else the installed `streambus`.
 */
function cliInvocation(): string {
  const launcher = fileURLToPath(new URL('../../../../streambus', import.meta.url));
  if (!existsSync(launcher)) return 'streambus';
  const rel = relative(process.cwd(), launcher);
  return isAbsolute(rel) || rel.startsWith('..') ? rel : `./${rel}`;
}

function defined(flags: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) out[k] = v;
  return out;
}

interface BrokerFlags {
  config?: string;
  dataDir?: string;
  listen?: string;
  http?: string;
  logLevel?: string;
  nodeId?: string;
  peers?: string;
  kafkaListen?: string;
  kafkaAdvertised?: string;
  kafkaBrokers?: string;
}

export function brokerCommand(): Command {
  const broker = new Command('broker').description('run a broker');
  broker
    .command('start')
    .description('run a broker in this process (JSON logs on stdout; SIGTERM/SIGINT stop it)')
    .option('--config <file>', 'YAML or JSON configuration file')
    .option('--data-dir <dir>', 'where the broker keeps its data')
    .option('--listen <host:port>', 'native protocol address (default 127.0.0.1:7070)')
    .option('--http <host:port>', 'HTTP address for /live, /ready, /metrics, or off')
    .option('--log-level <level>', `${LOG_LEVEL_HELP} (default info)`)
    .option('--node-id <n>', "this broker's node id, >= 1 (default 1)")
    .option(
      '--peers <list>',
      'the controller voters as ID@HOST:PORT,... (this broker included when a voter; default none: a cluster of one)',
    )
    .option('--kafka-listen <host:port>', 'Kafka wire protocol address (default: off)')
    .option(
      '--kafka-advertised <host:port>',
      'the Kafka address Metadata gives clients for this broker (default: --kafka-listen)',
    )
    .option(
      '--kafka-brokers <list>',
      "overrides of other brokers' Kafka addresses as ID@HOST:PORT,... (default: the addresses they registered)",
    )
    .action(async (opts: BrokerFlags) => {
      const { loadConfig, runBroker } = await import('@streambus/broker');
      // Read again on SIGHUP (run.ts): the dynamic settings that changed apply at runtime.
      const load = () =>
        loadConfig({
          env: process.env,
          flags: defined({
            config: opts.config,
            'data-dir': opts.dataDir,
            listen: opts.listen,
            http: opts.http,
            'log-level': opts.logLevel,
            'node-id': opts.nodeId,
            peers: opts.peers,
            'kafka-listen': opts.kafkaListen,
            'kafka-advertised': opts.kafkaAdvertised,
            'kafka-brokers': opts.kafkaBrokers,
          }),
        });
      await runBroker(load(), { reload: load });
    });
  return broker;
}

/** `streambus dev`'s Kafka listener, and the first Kafka port with --nodes. */
export const DEV_KAFKA_LISTEN = '127.0.0.1:9092';
const DEV_KAFKA_PORT = 9092;

interface DevFlags {
  dataDir: string;
  listen: string;
  http: string;
  kafkaListen: string;
  kafkaPort?: number;
  logLevel: string;
  autoCreateTopics: boolean;
  nodes?: number;
  port?: number;
}

export function devCommand(): Command {
  const dev = new Command('dev')
    .description('run a local broker with data under one directory (what `npm start` runs)')
    .option('--data-dir <dir>', 'data directory', './.streambus/data')
    .option('--listen <host:port>', 'native protocol address', '127.0.0.1:7070')
    .option('--http <host:port>', 'HTTP address, or off', '127.0.0.1:7071')
    .option(
      '--kafka-listen <host:port>',
      'Kafka wire protocol address (port 0: any free one), or off',
      DEV_KAFKA_LISTEN,
    )
    .option('--log-level <level>', LOG_LEVEL_HELP, 'warn')
    .option(
      '--no-auto-create-topics',
      'refuse unknown topics instead of creating them on first use',
    )
    .option(
      '--nodes <n>',
      `run a local cluster of n broker processes (1..${DEV_NODES_MAX}), data under <data-dir>/node-<id>`,
      parseIntArg('--nodes', 1, DEV_NODES_MAX),
    )
    .option(
      '--port <port>',
      'with --nodes: native ports from this one upward (default: any free ones)',
      parseIntArg('--port', 1, 65535),
    )
    .option(
      '--kafka-port <port>',
      `with --nodes: Kafka listener ports from this one upward (default ${DEV_KAFKA_PORT}; 0: any free ones)`,
      parseIntArg('--kafka-port', 0, 65535),
    );
  return dev.action(async (opts: DevFlags) => {
    const kafkaOff = opts.kafkaListen === 'off';
    if (opts.nodes === undefined) {
      if (opts.port !== undefined)
        throw new UsageError('--port needs --nodes (one broker takes --listen)');
      if (opts.kafkaPort !== undefined)
        throw new UsageError('--kafka-port needs --nodes (one broker takes --kafka-listen)');
    } else {
      if (dev.getOptionValueSource('kafkaListen') === 'cli' && !kafkaOff) {
        throw new UsageError(
          "--kafka-listen sets one broker's address; with --nodes use --kafka-port (or --kafka-listen off)",
        );
      }
      for (const flag of ['listen', 'http'] as const) {
        if (dev.getOptionValueSource(flag) === 'cli') {
          throw new UsageError(
            `--${flag} sets one broker's address; with --nodes the ports are chosen (--port sets the first)`,
          );
        }
      }
      await runDevCluster({
        nodes: opts.nodes,
        dataDir: opts.dataDir,
        port: opts.port ?? null,
        kafka: kafkaOff
          ? null
          : { port: opts.kafkaPort === 0 ? null : (opts.kafkaPort ?? DEV_KAFKA_PORT) },
        logLevel: opts.logLevel,
        autoCreateTopics: opts.autoCreateTopics,
        cli: cliInvocation(),
      });
      return;
    }
    const { Broker, loadConfig } = await import('@streambus/broker');
    const config = loadConfig({
      env: process.env,
      flags: {
        'data-dir': opts.dataDir,
        listen: opts.listen,
        http: opts.http,
        'kafka-listen': opts.kafkaListen,
        'log-level': opts.logLevel,
        'auto-create-topics': opts.autoCreateTopics,
      },
    });
    const broker = await Broker.start(config);
    const { host, port } = broker.address;
    const addr = `${host}:${port}`;
    const b = addr === '127.0.0.1:7070' ? '' : ` --bootstrap ${addr}`;
    const http = broker.httpAddress;
    const k = broker.kafkaAddress;
    const kafka = k === null ? null : `${k.host}:${k.port}`;
    const cli = cliInvocation();
    process.stdout.write(
      [
        `StreamBus dev broker listening on ${addr}${http ? ` (HTTP ${http.host}:${http.port}: /live /ready /metrics)` : ''}`,
        `data: ${config.dataDir}`,
        ...(kafka === null
          ? []
          : [
              `Kafka listener on ${kafka} (kafkajs, kcat, confluent-kafka; --kafka-listen off to disable)`,
            ]),
        config.autoCreateTopics
          ? `topics are created on first use (${config.defaults.partitions} partition${config.defaults.partitions === 1 ? '' : 's'}; --no-auto-create-topics to refuse)`
          : 'unknown topics are refused (create them with topic create)',
        '',
        'Try it from another terminal:',
        `  ${cli} topic create demo --partitions 3${b}`,
        `  echo hello | ${cli} produce demo${b}`,
        `  ${cli} consume demo --from-beginning${b}`,
        ...(kafka === null ? [] : [`  kcat -b ${kafka} -L`]),
        '',
        'Press Ctrl-C to stop.',
        '',
      ].join('\n'),
    );
    await new Promise<void>((resolve, reject) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        process.stdout.write('stopping...\n');
        broker.close().then(resolve, reject);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    process.stdout.write('stopped\n');
  });
}
