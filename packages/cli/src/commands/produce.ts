// `streambus produce TOPIC`: one record from --value, or one record per stdin line. Records are
// sent with sendBatch in chunks (no promise per record), so piping a large file is fast; the
// chunk size bounds what is held in memory besides the producer's own buffer.
import readline from 'node:readline';
import type { Acks, ProducerRecord, RecordMetadata } from '@streambus/client';
import { Command } from 'commander';
import { Progress, UsageError } from '../output.js';
import { type ClientFlags, withClient, withClientOptions } from './common.js';

const CHUNK_RECORDS_MAX = 10_000;

interface ProduceFlags extends ClientFlags {
  acks: string;
  key?: string;
  keySeparator?: string;
  value?: string;
  partition?: string;
}

function parseAcks(value: string): Acks {
  if (value === '0') return 0;
  if (value === '1') return 1;
  if (value === 'all' || value === '-1') return 'all';
  throw new UsageError(`--acks: expected 0, 1 or all, got '${value}'`);
}

export function produceCommand(): Command {
  return withClientOptions(
    new Command('produce')
      .argument('<topic>')
      .description('send records: --value, or one record per stdin line')
      .option('--acks <acks>', '0, 1 or all', 'all')
      .option('--key <key>', 'the key of every record')
      .option('--key-separator <sep>', 'split each line at the first SEP into key and value')
      .option('--value <value>', 'send this one record instead of reading stdin'),
  ).action(async (topic: string, opts: ProduceFlags) => {
    const acks = parseAcks(opts.acks);
    if (opts.key !== undefined && opts.keySeparator !== undefined) {
      throw new UsageError('--key and --key-separator cannot be used together');
    }
    if (opts.keySeparator === '') throw new UsageError('--key-separator: must not be empty');
    const toRecord = (line: string): ProducerRecord => {
      if (opts.keySeparator !== undefined) {
        const i = line.indexOf(opts.keySeparator);
        if (i >= 0)
          return { topic, key: line.slice(0, i), value: line.slice(i + opts.keySeparator.length) };
        return { topic, key: null, value: line };
      }
      return { topic, key: opts.key ?? null, value: line };
    };
    await withClient(opts, async (client, out) => {
      const producer = client.producer({ acks });
      const report = (results: RecordMetadata[]): void => {
        if (out.isJson) for (const r of results) out.json(r);
      };
      if (opts.value !== undefined) {
        const r = await producer.send(toRecord(opts.value));
        report([r]);
        out.human(
          acks === 0
            ? `sent 1 record to ${topic}`
            : `produced 1 record to ${topic} partition ${r.partition} at offset ${r.offset}`,
        );
        return;
      }
      const progress = new Progress('produced');
      const rl = readline.createInterface({
        input: process.stdin,
        crlfDelay: Number.POSITIVE_INFINITY,
      });
      let chunk: ProducerRecord[] = [];
      let count = 0;
      for await (const line of rl) {
        chunk.push(toRecord(line));
        if (chunk.length >= CHUNK_RECORDS_MAX) {
          report(await producer.sendBatch(chunk));
          count += chunk.length;
          chunk = [];
          progress.update(count);
        }
      }
      if (chunk.length > 0) {
        report(await producer.sendBatch(chunk));
        count += chunk.length;
      }
      await producer.flush();
      progress.done();
      out.human(`produced ${count} record${count === 1 ? '' : 's'} to ${topic}`);
    });
  });
}
