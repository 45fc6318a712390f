// `streambus broker start` (the broker as this process's main program, JSON logs on stdout) and
// `streambus dev` (the embedded local default that `npm start` runs: a broker on 127.0.0.1:7070
// with HTTP on 7071 and data under one directory, printing how to produce and consume, stopped
// gracefully by Ctrl-C or SIGTERM).
import { Broker, loadConfig, runBroker } from '@streambus/broker';
import { Command } from 'commander';

/** The broker refuses unknown STREAMBUS_* variables; the CLI's own are not the broker's. */
const CLIENT_ONLY_ENV = new Set(['STREAMBUS_BOOTSTRAP']);

function brokerEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!CLIENT_ONLY_ENV.has(k)) env[k] = v;
  return env;
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
    .action(async (opts: BrokerFlags) => {
      const config = loadConfig({
        env: brokerEnv(),
        flags: defined({
          config: opts.config,
          'data-dir': opts.dataDir,
          listen: opts.listen,
          http: opts.http,
        }),
      });
      await runBroker(config);
    });
  return broker;
}

export function devCommand(): Command {
  return new Command('dev')
    .description('run a local broker with data under one directory (what `npm start` runs)')
    .option('--data-dir <dir>', 'data directory', './.streambus/data')
    .option('--listen <host:port>', 'native protocol address', '127.0.0.1:7070')
    .option('--http <host:port>', 'HTTP address, or off', '127.0.0.1:7071')
    .action(async (opts: Required<Pick<BrokerFlags, 'dataDir' | 'listen' | 'http'>>) => {
      const config = loadConfig({
        env: brokerEnv(),
        flags: {
          'data-dir': opts.dataDir,
          listen: opts.listen,
          http: opts.http,
          'log-level': 'warn',
        },
      });
      const broker = await Broker.start(config);
      const { host, port } = broker.address;
      const addr = `${host}:${port}`;
      const b = addr === '127.0.0.1:7070' ? '' : ` --bootstrap ${addr}`;
      const http = broker.httpAddress;
      process.stdout.write(
        [
          `StreamBus dev broker listening on ${addr}${http ? ` (HTTP ${http.host}:${http.port}: /live /ready /metrics)` : ''}`,
          `data: ${config.dataDir}`,
          '',
          'Try it from another terminal:',
          `  pnpm streambus topic create demo --partitions 3${b}`,
          `  echo hello | pnpm streambus produce demo${b}`,
          `  pnpm streambus consume demo --from-beginning${b}`,
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
