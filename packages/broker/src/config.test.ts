import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@streambus/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, loadConfig, PRODUCE_FRAME_OVERHEAD_BYTES } from './config.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe(ErrorCode.INVALID_CONFIG);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('returns the defaults with no sources', () => {
    const c = loadConfig({});
    expect(c).toEqual(defaultConfig());
    expect(c.listen.port).toBe(7070);
    expect(c.http?.port).toBe(7071);
    expect(c.defaults.durability).toBe('always');
    expect(c.autoCreateTopics).toBe(false);
  });

  it('reads the controlled-shutdown and leader-balance keys from a file and the environment', () => {
    expect(defaultConfig().shutdown.timeoutMs).toBe(30_000);
    expect(defaultConfig().leaderBalance.intervalMs).toBe(30_000);
    const c = loadConfig({
      file: file('ops.yaml', 'shutdown:\n  timeoutMs: 5000\n'),
      env: { STREAMBUS_LEADER_BALANCE_INTERVAL_MS: '0' },
    });
    expect(c.shutdown.timeoutMs).toBe(5000);
    expect(c.leaderBalance.intervalMs).toBe(0);
    expect(
      configError(() => loadConfig({ env: { STREAMBUS_SHUTDOWN_TIMEOUT_MS: '-1' } })).message,
    ).toMatch(/^shutdown\.timeoutMs: /);
  });

  it('applies flags > env > file > defaults', () => {
    const yaml = file(
      'a.yaml',
      'dataDir: /from/file\nlisten: 127.0.0.1:9000\nlimits:\n  inflightRequestsMax: 7\ndefaults:\n  partitions: 3\n  durability: interval\n',
    );
    const c = loadConfig({
      file: yaml,
      env: {
        STREAMBUS_DATA_DIR: '/from/env',
        STREAMBUS_LIMITS_INFLIGHT_REQUESTS_MAX: '9',
        HOME: '/x',
      },
      flags: { 'data-dir': '/from/flags', http: 'off' },
    });
    expect(c.dataDir).toBe('/from/flags');
    expect(c.limits.inflightRequestsMax).toBe(9);
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(c.defaults.partitions).toBe(3);
    expect(c.defaults.durability).toBe('interval');
    expect(c.http).toBeNull();
  });

  it('reads JSON by extension, with object listeners', () => {
    const json = file(
      'b.json',
      JSON.stringify({ listen: { host: '0.0.0.0', port: 0 }, http: null, autoCreateTopics: true }),
    );
    const c = loadConfig({ file: json });
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 0 });
    expect(c.http).toBeNull();
    expect(c.autoCreateTopics).toBe(true);
  });

  it('accepts dotted and kebab-case flags', () => {
    const c = loadConfig({
      flags: { 'limits.frame-bytes-max': '2097152', 'defaults.maxMessageBytes': 1000 },
    });
    expect(c.limits.frameBytesMax).toBe(2097152);
    expect(c.defaults.maxMessageBytes).toBe(1000);
  });

  it('names the key and what is allowed', () => {
    expect(configError(() => loadConfig({ flags: { listen: '7070x' } })).message).toBe(
      "listen: expected HOST:PORT, got '7070x'",
    );
    expect(
      configError(() => loadConfig({ env: { STREAMBUS_DEFAULTS_DURABILITY: 'sometimes' } }))
        .message,
    ).toBe("defaults.durability: expected one of always, interval, none, got 'sometimes'");
    expect(
      configError(() => loadConfig({ flags: { 'limits.inflightRequestsMax': '0' } })).message,
    ).toMatch(/^limits\.inflightRequestsMax: expected an integer in 1\.\./);
    expect(configError(() => loadConfig({ env: { STREAMBUS_BOGUS: '1' } })).message).toMatch(
      /^STREAMBUS_BOGUS: unknown environment variable; did you mean STREAMBUS_\w+\?/,
    );
    expect(
      configError(() => loadConfig({ file: file('c.yaml', 'limits:\n  nope: 1\n') })).key,
    ).toBe('limits.nope');
    expect(
      configError(() => loadConfig({ file: file('d.yaml', 'listen: [1, 2\n') })).message,
    ).toMatch(/not valid YAML/);
    expect(configError(() => loadConfig({ file: join(dir, 'missing.yaml') })).message).toMatch(
      /^config: cannot read .*missing\.yaml: no such file \(expected a YAML or JSON configuration file\)$/,
    );
    expect(configError(() => loadConfig({ flags: { listen: '127.0.0.1:70000' } })).key).toBe(
      'listen',
    );
  });

  it('reads the decompression budget for produced batches', () => {
    expect(loadConfig({}).limits.decompressedBytesMax).toBe(64 * 1024 * 1024);
    const c = loadConfig({ env: { STREAMBUS_LIMITS_DECOMPRESSED_BYTES_MAX: '1048576' } });
    expect(c.limits.decompressedBytesMax).toBe(1048576);
    expect(
      configError(() => loadConfig({ flags: { 'limits.decompressed-bytes-max': '10' } })).key,
    ).toBe('limits.decompressedBytesMax');
  });

  it('reads the unsynced-bytes bound, at least one largest batch', () => {
    expect(loadConfig({}).limits.unsyncedBytesMax).toBe(32 * 1024 * 1024);
    const c = loadConfig({ env: { STREAMBUS_LIMITS_UNSYNCED_BYTES_MAX: '8388608' } });
    expect(c.limits.unsyncedBytesMax).toBe(8388608);
    const small = configError(() =>
      loadConfig({ flags: { 'limits.unsynced-bytes-max': 512 * 1024 } }),
    );
    expect(small.message).toBe(
      'limits.unsyncedBytesMax: must be at least defaults.maxMessageBytes (1048576)',
    );
  });

  it('answers a misspelt variable or key with the nearest known name', () => {
    const env = (name: string) => configError(() => loadConfig({ env: { [name]: 'x' } })).message;
    expect(env('STREAMBUS_DIR')).toMatch(/^STREAMBUS_DIR: .*did you mean STREAMBUS_DATA_DIR\?/);
    expect(env('STREAMBUS_LOGLEVEL')).toContain('did you mean STREAMBUS_LOG_LEVEL?');
    expect(env('STREAMBUS_DEFAULTS_DURABILTY')).toContain(
      'did you mean STREAMBUS_DEFAULTS_DURABILITY?',
    );
    expect(env('STREAMBUS_DURABILITY')).toContain('did you mean STREAMBUS_DEFAULTS_DURABILITY?');
    expect(
      configError(() => loadConfig({ file: file('e.yaml', 'limits:\n  frameBytesMx: 1\n') }))
        .message,
    ).toMatch(/^limits\.frameBytesMx: unknown key; did you mean limits\.frameBytesMax\?/);
  });

  it('ignores the client variables (STREAMBUS_BOOTSTRAP) so a CLI shell can start a broker', () => {
    const c = loadConfig({
      env: { STREAMBUS_BOOTSTRAP: '10.0.0.1:9092', STREAMBUS_DATA_DIR: '/d' },
    });
    expect(c.dataDir).toBe('/d');
  });

  it('says what --config expected when it is given KEY=VALUE', () => {
    const message = configError(() => loadConfig({ flags: { config: 'durability=none' } })).message;
    expect(message).toMatch(
      /^config: expected a YAML or JSON configuration file, got 'durability=none'/,
    );
    expect(message).toContain('defaults: { durability: none }');
    expect(message).toContain('STREAMBUS_DEFAULTS_DURABILITY=none');
    expect(message).toContain('topic create NAME --config KEY=VALUE');
    expect(message).not.toContain('ENOENT');
  });

  it('ties related limits together', () => {
    expect(
      configError(() =>
        loadConfig({ flags: { 'limits.frameBytesMax': 4096, 'defaults.maxMessageBytes': 8192 } }),
      ).key,
    ).toBe('defaults.maxMessageBytes');
    // Equal to the frame limit is refused: the request framing around a batch that size
    // would overflow the frame, closing the connection instead of answering MESSAGE_TOO_LARGE.
    const equal = configError(() =>
      loadConfig({ flags: { 'limits.frameBytesMax': 65536, 'defaults.maxMessageBytes': 65536 } }),
    );
    expect(equal.key).toBe('defaults.maxMessageBytes');
    expect(equal.message).toContain('limits.frameBytesMax (65536)');
    expect(
      loadConfig({
        flags: {
          'limits.frameBytesMax': 65536,
          'defaults.maxMessageBytes': 65536 - PRODUCE_FRAME_OVERHEAD_BYTES,
        },
      }).defaults.maxMessageBytes,
    ).toBe(65536 - PRODUCE_FRAME_OVERHEAD_BYTES);
    expect(
      configError(() =>
        loadConfig({
          flags: {
            'limits.frameBytesMax': 1048576,
            'limits.inflightBytesMax': 4096,
            'defaults.maxMessageBytes': 1024,
          },
        }),
      ).key,
    ).toBe('limits.inflightBytesMax');
    expect(
      configError(() => loadConfig({ flags: { listen: '127.0.0.1:7000', http: '127.0.0.1:7000' } }))
        .key,
    ).toBe('http');
  });

  it('ties the partition limits together', () => {
    expect(
      loadConfig({ env: { STREAMBUS_LIMITS_PARTITIONS_MAX: '50000' } }).limits.partitionsMax,
    ).toBe(50000);
    const perTopic = configError(() =>
      loadConfig({ flags: { 'limits.partitionsMax': 100, 'limits.partitionsPerTopicMax': 200 } }),
    );
    expect(perTopic.message).toBe(
      'limits.partitionsPerTopicMax: must not exceed limits.partitionsMax (100)',
    );
    expect(
      configError(() =>
        loadConfig({ flags: { 'limits.partitionsPerTopicMax': 4, 'defaults.partitions': 8 } }),
      ).key,
    ).toBe('defaults.partitions');
  });
});

describe('hostile-input limits', () => {
  it('reads them from the environment and refuses a fetch cap above the client frame limit', () => {
    const c = loadConfig({
      env: {
        STREAMBUS_LIMITS_FETCH_BYTES_MAX: String(8 * 1024 * 1024),
        STREAMBUS_LIMITS_BROKER_INBOUND_BYTES_MAX: String(32 * 1024 * 1024),
        STREAMBUS_LIMITS_FRAME_STALL_TIMEOUT_MS: '2000',
      },
    });
    expect(c.limits).toMatchObject({
      fetchBytesMax: 8 * 1024 * 1024,
      brokerInboundBytesMax: 32 * 1024 * 1024,
      frameStallTimeoutMs: 2000,
      outboundBytesMax: 64 * 1024 * 1024,
      requestDecodedBytesMax: 16 * 1024 * 1024,
    });
    const err = configError(() =>
      loadConfig({ flags: { 'limits.fetch-bytes-max': String(61 * 1024 * 1024) } }),
    );
    expect(err.key).toBe('limits.fetchBytesMax');
    expect(err.message).toMatch(/1024\.\.62914560/);
  });
});
