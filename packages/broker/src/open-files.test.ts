import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeRecordBatch } from '@streambus/protocol';
import { PartitionLog } from '@streambus/storage';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { defaultConfig, loadConfig } from './config.js';
import { BrokerMetrics } from './metrics.js';
import { processOpenFilesLimit, storageOpenFilesMax } from './open-files.js';
import { brokerFileSystem, partitionLogConfig } from './storage-log.js';
import { resolveTopicConfig, type TopicConfig } from './topic-config.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max processes             63704                63704                processes
Max open files            256                  4096                 files
Max locked memory         8388608              8388608              bytes
`;

describe('storage open-files bound', () => {
  it('reads the soft open-file limit of the process', () => {
    expect(processOpenFilesLimit(() => LIMITS)).toBe(256);
    expect(processOpenFilesLimit(() => LIMITS.replace(/256 /, 'unlimited '))).toBeNull();
    expect(
      processOpenFilesLimit(() => {
        throw new Error('no /proc');
      }),
    ).toBeNull();
    // This process (Linux): a positive number.
    const own = processOpenFilesLimit();
    if (own !== null) expect(own).toBeGreaterThan(0);
  });

  it('lowers openFilesMax to half the process limit, never raises it', () => {
    expect(storageOpenFilesMax(1024, 256)).toEqual({ openFilesMax: 128, lowered: true });
    expect(storageOpenFilesMax(1024, 65536)).toEqual({ openFilesMax: 1024, lowered: false });
    expect(storageOpenFilesMax(1024, null)).toEqual({ openFilesMax: 1024, lowered: false });
    expect(storageOpenFilesMax(64, 1)).toEqual({ openFilesMax: 1, lowered: true });
  });

  it('is configured as limits.openFilesMax (default 1024, at least 16)', () => {
    expect(loadConfig({}).limits.openFilesMax).toBe(1024);
    expect(
      loadConfig({ env: { STREAMBUS_LIMITS_OPEN_FILES_MAX: '300' } }).limits.openFilesMax,
    ).toBe(300);
    expect(() => loadConfig({ flags: { 'limits.open-files-max': '8' } })).toThrow(
      /limits.openFilesMax: expected an integer in 16..1000000, got '8'/,
    );
  });

  it('wires one bound for all logs, with a warning when ulimit lowers it, and metrics', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-open-files-'));
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(l) });
    const metrics = new BrokerMetrics(() => []);
    try {
      const fs = brokerFileSystem(metrics, {
        openFilesMax: 1024,
        processOpenFilesLimit: 6,
        logger,
      });
      const openLog = (d: string, t: TopicConfig) =>
        PartitionLog.open(fs, d, partitionLogConfig(t));
      const warning = JSON.parse(lines.join('')) as Record<string, unknown>;
      expect(warning).toMatchObject({ level: 40, openFilesMax: 3, processOpenFilesLimit: 6 });
      expect(warning.msg).toMatch(/limits.openFilesMax lowered/);
      const c = defaultConfig();
      const topic = resolveTopicConfig(c.defaults, {}, c.limits.frameBytesMax);
      const logs = [];
      for (let i = 0; i < 8; i++) logs.push(await openLog(join(dir, String(i)), topic));
      for (const [i, log] of logs.entries()) {
        await log.append(encodeRecordBatch([{ value: Buffer.from(`v${i}`) }]));
      }
      for (const log of logs) expect((await log.read(0, 1000)).data.length).toBeGreaterThan(0);
      const text = await metrics.registry.metrics();
      expect(text).toMatch(/^streambus_storage_open_files_max 3$/m);
      const open = Number(/^streambus_storage_open_files (\d+)$/m.exec(text)?.[1]);
      expect(open).toBeLessThanOrEqual(3);
      const evictions = Number(/^streambus_storage_file_evictions_total (\d+)$/m.exec(text)?.[1]);
      expect(evictions).toBeGreaterThan(8);
      expect(text).toMatch(/^streambus_storage_open_files_exhausted_total 0$/m);
      for (const log of logs) await log.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
