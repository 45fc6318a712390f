// Options every client command shares (--bootstrap, --output) and the client they build.

import { DEFAULT_BOOTSTRAP, StreamBusClient } from '@streambus/client';
import { type Command, Option } from 'commander';
import { Output, type OutputFormat, parseOutput } from '../output.js';

export interface ClientFlags {
  readonly bootstrap: string;
  readonly output: OutputFormat;
}

export function withClientOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--bootstrap <host:port,...>',
        'broker addresses, comma-separated (one answering is enough)',
      )
        .env('STREAMBUS_BOOTSTRAP')
        .default(DEFAULT_BOOTSTRAP),
    )
    .addOption(
      new Option('--output <format>', 'human or json').default('human').argParser(parseOutput),
    );
}

export function openClient(flags: ClientFlags): { client: StreamBusClient; out: Output } {
  const client = new StreamBusClient({
    bootstrap: flags.bootstrap,
    clientId: 'streambus-cli',
    retry: { retriesMax: 3, totalTimeoutMs: 10_000 },
  });
  return { client, out: new Output(flags.output) };
}

export { parseIntArg } from './args.js';

/** Runs `fn` with a client that is always closed afterwards. */
export async function withClient<T>(
  flags: ClientFlags,
  fn: (client: StreamBusClient, out: Output) => Promise<T>,
): Promise<T> {
  const { client, out } = openClient(flags);
  try {
    return await fn(client, out);
  } finally {
    await client.close();
  }
}
