import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { defaultConfig, PRODUCE_FRAME_OVERHEAD_BYTES } from './config.js';
import {
  checkTopicName,
  compactionApplies,
  describeTopicConfig,
  mergeOverrides,
  resolveTopicConfig,
  retentionApplies,
  TOPIC_CONFIG_KEYS,
} from './topic-config.js';

const defaults = defaultConfig().defaults;
const FRAME = 16 * 1024 * 1024;

function code(fn: () => unknown): { code: number; message: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StreamBusError);
    return { code: (err as StreamBusError).code, message: (err as Error).message };
  }
  throw new Error('expected an error');
}

describe('topic config', () => {
  it('overlays overrides on the defaults', () => {
    const c = resolveTopicConfig(
      defaults,
      {
        'retention.bytes': '1000000',
        durability: 'none',
        'segment.bytes': '2048',
        'max.message.bytes': '1024',
      },
      FRAME,
    );
    expect(c.retentionBytes).toBe(1_000_000);
    expect(c.durability).toBe('none');
    expect(c.segmentBytes).toBe(2048);
    expect(c.retentionMs).toBe(defaults.retentionMs);
  });

  it('rejects bad values naming the key and what is allowed', () => {
    expect(code(() => resolveTopicConfig(defaults, { durability: 'maybe' }, FRAME))).toEqual({
      code: ErrorCode.INVALID_CONFIG,
      message: "durability: expected one of always, interval, none, got 'maybe'",
    });
    expect(
      code(() => resolveTopicConfig(defaults, { 'retention.ms': '-5' }, FRAME)).message,
    ).toMatch(/^retention\.ms: expected -1/);
    expect(
      code(() => resolveTopicConfig(defaults, { 'segment.bytes': '12abc' }, FRAME)).message,
    ).toMatch(/^segment\.bytes:/);
    expect(
      code(() => resolveTopicConfig(defaults, { 'no.such.key': 'compact' }, FRAME)).message,
    ).toMatch(/^no\.such\.key: unknown topic config \(allowed: retention\.bytes/);
    expect(
      code(() =>
        resolveTopicConfig(
          defaults,
          { 'segment.bytes': '4096', 'max.message.bytes': '8192' },
          FRAME,
        ),
      ).message,
    ).toMatch(/^max\.message\.bytes: 8192 exceeds segment\.bytes/);
    expect(
      code(() => resolveTopicConfig(defaults, { 'max.message.bytes': String(FRAME * 2) }, FRAME))
        .code,
    ).toBe(ErrorCode.INVALID_CONFIG);
  });

  it('keeps max.message.bytes below the frame limit by the request framing', () => {
    // Equal to the frame limit, a batch of that size could never arrive in one frame: the
    // connection would be closed instead of the batch being answered MESSAGE_TOO_LARGE.
    const equal = code(() =>
      resolveTopicConfig(defaults, { 'max.message.bytes': String(FRAME) }, FRAME),
    );
    expect(equal.code).toBe(ErrorCode.INVALID_CONFIG);
    expect(equal.message).toMatch(/^max\.message\.bytes: .*limits\.frameBytesMax/);
    const most = FRAME - PRODUCE_FRAME_OVERHEAD_BYTES;
    expect(
      resolveTopicConfig(defaults, { 'max.message.bytes': String(most) }, FRAME).maxMessageBytes,
    ).toBe(most);
    expect(
      code(() => resolveTopicConfig(defaults, { 'max.message.bytes': String(most + 1) }, FRAME))
        .message,
    ).toContain(`at most ${most}`);
  });

  it('merges alterations and describes effective values', () => {
    const o = mergeOverrides(
      { 'retention.ms': '1000', durability: 'none' },
      { durability: null, 'flush.ms': '50' },
    );
    expect(o).toEqual({ 'retention.ms': '1000', 'flush.ms': '50' });
    const described = describeTopicConfig(resolveTopicConfig(defaults, o, FRAME), o);
    expect(described.find((e) => e.name === 'flush.ms')).toEqual({
      name: 'flush.ms',
      value: '50',
      isDefault: false,
      readOnly: false,
    });
    expect(described.find((e) => e.name === 'durability')).toEqual({
      name: 'durability',
      value: 'always',
      isDefault: true,
      readOnly: false,
    });
  });

  it('checks topic names as Kafka does', () => {
    for (const ok of ['orders', 'a.b-c_D9', 'x'.repeat(249)])
      expect(() => checkTopicName(ok)).not.toThrow();
    for (const bad of ['', '.', '..', 'has space', 'slash/no', 'x'.repeat(250), 'ü']) {
      expect(code(() => checkTopicName(bad)).code).toBe(ErrorCode.INVALID_TOPIC_EXCEPTION);
    }
  });

  it('takes cleanup.policy, delete.retention.ms and min.cleanable.dirty.ratio (Kafka defaults)', () => {
    const d = resolveTopicConfig(defaults, {}, FRAME);
    expect(d.cleanupPolicy).toBe('delete');
    expect(d.deleteRetentionMs).toBe(86_400_000);
    expect(d.minCleanableDirtyRatio).toBe(0.5);
    const parse = TOPIC_CONFIG_KEYS['cleanup.policy']!.parse;
    expect(parse('compact')).toBe('compact');
    expect(parse('compact,delete')).toBe('compact,delete');
    expect(parse('delete, compact')).toBe('compact,delete');
    expect(resolveTopicConfig(defaults, { 'cleanup.policy': 'delete' }, FRAME).cleanupPolicy).toBe(
      'delete',
    );
    for (const v of ['compact', 'compact,delete'] as const) {
      const c = resolveTopicConfig(defaults, { 'cleanup.policy': v }, FRAME);
      expect(c.cleanupPolicy).toBe(v);
    }
    expect([retentionApplies('compact'), compactionApplies('compact')]).toEqual([false, true]);
    expect([retentionApplies('compact,delete'), compactionApplies('delete')]).toEqual([
      true,
      false,
    ]);
    const c = resolveTopicConfig(
      defaults,
      { 'delete.retention.ms': '1000', 'min.cleanable.dirty.ratio': '0.25' },
      FRAME,
    );
    expect([c.deleteRetentionMs, c.minCleanableDirtyRatio]).toEqual([1000, 0.25]);
    for (const [key, bad, allowed] of [
      ['cleanup.policy', 'compacted', 'delete, compact, compact,delete'],
      ['cleanup.policy', 'compact,compact', 'delete, compact, compact,delete'],
      ['cleanup.policy', '', 'delete, compact'],
      ['delete.retention.ms', '-1', 'an integer >= 0'],
      ['min.cleanable.dirty.ratio', '1.5', 'a number in 0..1'],
      ['min.cleanable.dirty.ratio', 'half', 'a number in 0..1'],
    ] as const) {
      const e = code(() => resolveTopicConfig(defaults, { [key]: bad }, FRAME));
      expect(e.code).toBe(ErrorCode.INVALID_CONFIG);
      expect(e.message).toContain(key);
      expect(e.message).toContain(allowed);
    }
    const described = describeTopicConfig(d, {});
    expect(described.find((e) => e.name === 'cleanup.policy')?.value).toBe('delete');
  });
});
