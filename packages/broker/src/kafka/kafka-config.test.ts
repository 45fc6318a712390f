// The Kafka listener's configuration keys: kafka.listen (flag --kafka-listen, env
// STREAMBUS_KAFKA_LISTEN, file `kafka: { listen }`), kafka.advertised and kafka.brokers.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';

describe('kafka.* configuration', () => {
  it('is off by default', () => {
    expect(loadConfig({}).kafka).toEqual({ listen: null, advertised: null, brokers: [] });
  });

  it('takes a flag, an environment variable or a file, flags first', () => {
    expect(loadConfig({ flags: { 'kafka-listen': '127.0.0.1:9092' } }).kafka.listen).toEqual({
      host: '127.0.0.1',
      port: 9092,
    });
    const env = {
      STREAMBUS_KAFKA_LISTEN: '0.0.0.0:19092',
      STREAMBUS_KAFKA_ADVERTISED: 'kafka.example:9092',
      STREAMBUS_KAFKA_BROKERS: '2@kafka-2.example:9092,3@kafka-3.example:9092',
    };
    const fromEnv = loadConfig({ env }).kafka;
    expect(fromEnv).toEqual({
      listen: { host: '0.0.0.0', port: 19092 },
      advertised: { host: 'kafka.example', port: 9092 },
      brokers: [
        { id: 2, host: 'kafka-2.example', port: 9092 },
        { id: 3, host: 'kafka-3.example', port: 9092 },
      ],
    });
    expect(loadConfig({ env, flags: { 'kafka-listen': 'off' } }).kafka.listen).toBeNull();
    const dir = mkdtempSync(join(tmpdir(), 'sb-kafka-config-'));
    try {
      const file = join(dir, 'broker.yaml');
      writeFileSync(file, 'kafka:\n  listen: 127.0.0.1:9093\n  brokers: ["2@127.0.0.1:9094"]\n');
      expect(loadConfig({ file }).kafka).toMatchObject({
        listen: { host: '127.0.0.1', port: 9093 },
        brokers: [{ id: 2, host: '127.0.0.1', port: 9094 }],
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad values naming the key', () => {
    expect(() => loadConfig({ flags: { 'kafka-listen': 'nowhere' } })).toThrow(
      /^kafka\.listen: expected HOST:PORT/,
    );
    expect(() => loadConfig({ env: { STREAMBUS_KAFKA_BROKERS: 'x@y' } })).toThrow(
      /^kafka\.brokers/,
    );
    expect(() =>
      loadConfig({ flags: { listen: '127.0.0.1:7070', 'kafka-listen': '127.0.0.1:7070' } }),
    ).toThrow(/^kafka\.listen: must differ from listen/);
  });
});
