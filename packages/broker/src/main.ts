// Process entry (`node dist/main.js`): flags --config FILE --data-dir DIR --listen HOST:PORT
// --http HOST:PORT|off --node-id N --peers ID@HOST:PORT,... --log-level LEVEL, then STREAMBUS_* environment variables
// (the client's, such as STREAMBUS_BOOTSTRAP, ignored), then the file; see config.ts. Exit
// codes, the same rule as the CLI's: 0 after a graceful shutdown, 2 for a bad configuration or
// command line, 1 for any other startup failure (port in use, data directory not writable).
import { parseArgs } from 'node:util';
import { isStreamBusError } from '@streambus/protocol';
import { loadConfig } from './config.js';
import { runBroker } from './run.js';

async function main(): Promise<number> {
  let config: ReturnType<typeof loadConfig>;
  let reload: () => ReturnType<typeof loadConfig>;
  try {
    const { values } = parseArgs({
      args: process.argv.slice(2),
      options: {
        config: { type: 'string' },
        'data-dir': { type: 'string' },
        listen: { type: 'string' },
        http: { type: 'string' },
        'node-id': { type: 'string' },
        peers: { type: 'string' },
        'log-level': { type: 'string' },
      },
      strict: true,
    });
    reload = () => loadConfig({ env: process.env, flags: values });
    config = reload();
  } catch (err) {
    process.stderr.write(`streambus broker: ${(err as Error).message}\n`);
    return 2;
  }
  try {
    await runBroker(config, { reload });
    return 0;
  } catch (err) {
    process.stderr.write(
      `streambus broker: ${isStreamBusError(err) ? err.message : String(err)}\n`,
    );
    return 1;
  }
}

main().then((code) => process.exit(code));
