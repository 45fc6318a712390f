import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@streambus/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, loadConfig } from './config.js';

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
      /^STREAMBUS_BOGUS: unknown environment variable \(allowed: .*STREAMBUS_DATA_DIR/,
    );
    expect(
      configError(() => loadConfig({ file: file('c.yaml', 'limits:\n  nope: 1\n') })).key,
    ).toBe('limits.nope');
    expect(
      configError(() => loadConfig({ file: file('d.yaml', 'listen: [1, 2\n') })).message,
    ).toMatch(/not valid YAML/);
    expect(configError(() => loadConfig({ file: join(dir, 'missing.yaml') })).message).toMatch(
      /^config: cannot read/,
    );
    expect(configError(() => loadConfig({ flags: { listen: '127.0.0.1:70000' } })).key).toBe(
      'listen',
    );
  });

  it('ties related limits together', () => {
    expect(
      configError(() =>
        loadConfig({ flags: { 'limits.frameBytesMax': 4096, 'defaults.maxMessageBytes': 8192 } }),
      ).key,
    ).toBe('defaults.maxMessageBytes');
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
