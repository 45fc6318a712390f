// `streambus consume TOPIC`: prints values one per line (human) or one JSON object per record
// (key, value, partition, offset, timestamp, headers). Starts at the beginning, as the SDK's
// assign() does without `from`, unless --from-end or --offset; stops after --max-messages, after
// --timeout-ms without a new record, or on Ctrl-C/SIGTERM (exit 0). With --group G it is a
// member of consumer group G instead: it joins, gets its share of the partitions, starts at the
// group's committed offsets (--from-end: at the end where nothing is committed), commits what it
// printed (every 5 s and on exit) and leaves the group when it stops.
import {
  type ConsumerRecord,
  ErrorCode,
  type StartFrom,
  type StreamBusClient,
  StreamBusError,
} from '@streambus/client';
import { Command } from 'commander';
import { type Output, UsageError } from '../output.js';
import { type ClientFlags, parseIntArg, withClient, withClientOptions } from './common.js';

interface ConsumeFlags extends ClientFlags {
  group?: string;
  fromBeginning?: boolean;
  fromEnd?: boolean;
  offset?: number;
  partition?: number;
  maxMessages?: number;
  timeoutMs?: number;
}

const utf8 = (u: Uint8Array | null): string | null =>
  u === null ? null : Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('utf8');

function toJson(r: ConsumerRecord): Record<string, unknown> {
  const headers: Record<string, string | null> = {};
  for (const h of r.headers) headers[h.key] = utf8(h.value);
  return {
    key: utf8(r.key),
    value: utf8(r.value),
    partition: r.partition,
    offset: r.offset,
    timestamp: r.timestamp,
    headers,
  };
}

export function consumeCommand(): Command {
  return withClientOptions(
    new Command('consume')
      .argument('<topic>')
      .description('print records as they arrive')
      .option('--from-beginning', 'start at the earliest offset (the default)')
      .option('--from-end', 'start at the end: only records produced from now on')
      .option('--offset <n>', 'start at this offset', parseIntArg('--offset', 0))
      .option('--partition <p>', 'only this partition', parseIntArg('--partition', 0, 99_999))
      .option(
        '--group <group>',
        'consume as a member of this consumer group (commits as it prints)',
      )
      .option(
        '--max-messages <n>',
        'exit after this many records',
        parseIntArg('--max-messages', 1),
      )
      .option(
        '--timeout-ms <t>',
        'exit when no record arrives for this long',
        parseIntArg('--timeout-ms', 1),
      ),
  ).action(async (topic: string, opts: ConsumeFlags) => {
    if ([opts.fromBeginning, opts.fromEnd, opts.offset !== undefined].filter(Boolean).length > 1) {
      throw new UsageError('use one of --from-beginning, --from-end and --offset');
    }
    if (opts.group !== undefined) {
      if (opts.offset !== undefined || opts.partition !== undefined) {
        throw new UsageError(
          '--group: the group assigns partitions and starts at its committed offsets (drop --offset and --partition)',
        );
      }
      const group = opts.group;
      await withClient(opts, (client, out) => consumeInGroup(client, out, topic, group, opts));
      return;
    }
    // No flag: no `from`, so the SDK's default start (autoOffsetReset, 'earliest') applies.
    const from: StartFrom | undefined =
      opts.offset !== undefined
        ? { offset: opts.offset }
        : opts.fromEnd
          ? 'latest'
          : opts.fromBeginning
            ? 'earliest'
            : undefined;
    await withClient(opts, async (client, out) => {
      const maxWaitMs = Math.min(500, opts.timeoutMs ?? 500);
      const consumer = client.consumer({ maxWaitMs });
      await consumer.assign({
        topic,
        ...(from === undefined ? {} : { from }),
        ...(opts.partition === undefined ? {} : { partitions: [opts.partition] }),
      });
      let stop = false;
      const onSignal = (): void => {
        stop = true;
        void consumer.close();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      let count = 0;
      let lastRecordMs = Date.now();
      try {
        while (!stop) {
          const batches = await consumer.poll().catch((err: unknown) => {
            if (stop) return [];
            throw err;
          });
          if (batches.length === 0) {
            if (opts.timeoutMs !== undefined && Date.now() - lastRecordMs >= opts.timeoutMs) break;
            continue;
          }
          lastRecordMs = Date.now();
          let text = '';
          for (const b of batches) {
            for (const r of b.records) {
              const rec = { topic, partition: b.partition, ...r };
              text += out.isJson ? `${JSON.stringify(toJson(rec))}\n` : `${utf8(r.value) ?? ''}\n`;
              count++;
              if (opts.maxMessages !== undefined && count >= opts.maxMessages) {
                stop = true;
                break;
              }
            }
            if (stop) break;
          }
          if (!out.write(text))
            await new Promise((resolve) => process.stdout.once('drain', resolve));
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await consumer.close();
      }
    });
  });
}

/**
 * `consume TOPIC --group G`: prints the records of the partitions the group gives this member
 * until --max-messages, --timeout-ms without a record, or a signal; close() commits what was
 * printed and leaves the group.
 */
async function consumeInGroup(
  client: StreamBusClient,
  out: Output,
  topic: string,
  groupId: string,
  opts: ConsumeFlags,
): Promise<void> {
  // --timeout-ms counts from the first assignment: joining (the coordinator's topic is created
  // on first use) is not "no record". Joining itself is bounded by JOIN_TIMEOUT_MS.
  let lastRecordMs = Date.now();
  let assigned = false;
  let joinFailed: StreamBusError | null = null;
  const consumer = client.consumer({
    groupId,
    maxWaitMs: Math.min(500, opts.timeoutMs ?? 500),
    autoOffsetReset: opts.fromEnd ? 'latest' : 'earliest',
    onAssigned: () => {
      if (!assigned) lastRecordMs = Date.now();
      assigned = true;
    },
  });
  await consumer.subscribe({ topics: [topic] });
  const stop = (): void => {
    void consumer.close();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const idle =
    opts.timeoutMs === undefined
      ? null
      : setInterval(
          () => {
            const waited = Date.now() - lastRecordMs;
            if (assigned ? waited >= opts.timeoutMs! : waited >= JOIN_TIMEOUT_MS) {
              if (!assigned) {
                joinFailed = new StreamBusError(
                  ErrorCode.REQUEST_TIMED_OUT,
                  `no partitions of ${topic} assigned in group ${groupId} within ${JOIN_TIMEOUT_MS / 1000} s`,
                );
              }
              stop();
            }
          },
          Math.min(100, opts.timeoutMs),
        );
  let count = 0;
  try {
    for await (const r of consumer) {
      lastRecordMs = Date.now();
      const text = out.isJson ? `${JSON.stringify(toJson(r))}\n` : `${utf8(r.value) ?? ''}\n`;
      if (!out.write(text)) await new Promise((resolve) => process.stdout.once('drain', resolve));
      count++;
      // Leaving the loop marks this record processed, so close() commits it too.
      if (opts.maxMessages !== undefined && count >= opts.maxMessages) break;
    }
  } finally {
    if (idle !== null) clearInterval(idle);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await consumer.close();
  }
  if (joinFailed !== null) throw joinFailed;
}

/** How long `consume --group --timeout-ms T` waits for its first assignment. */
const JOIN_TIMEOUT_MS = 30_000;
