import { ErrorCode } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../config.js';
import { planAlterBrokerConfig } from '../controller/broker-config.js';
import { applyRecord, decodeSnapshot, encodeSnapshot } from '../controller/metadata-state.js';
import { liveCluster, runRecords } from '../controller/state-testing.js';
import {
  applyDynamicConfig,
  checkBrokerConfigChange,
  effectiveDynamicConfig,
  staticDynamicValues,
} from './dynamic-config.js';

const run = runRecords;
const brokers = liveCluster;

function expectConfigError(fn: () => unknown, message: RegExp): void {
  expect(fn).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_CONFIG }));
  expect(fn).toThrow(message);
}

describe('dynamic broker settings', () => {
  it('validates each change with an error naming the key', () => {
    checkBrokerConfigChange('logLevel', 'debug');
    checkBrokerConfigChange('reassignmentBytesPerSecond', '1048576');
    checkBrokerConfigChange('leaderBalance.intervalMs', null);
    checkBrokerConfigChange('limits.requestTimeoutMs', '20000');
    checkBrokerConfigChange('limits.fetchBytesMax', '1048576');
    for (const key of [
      'limits.connectionsMax',
      'limits.inflightBytesMax',
      'limits.partitionsMax',
    ]) {
      expectConfigError(() => checkBrokerConfigChange(key, '100000'), /not a dynamic setting/);
    }
    expectConfigError(
      () => checkBrokerConfigChange('limits.fetchBytesMax', '999999999'),
      /limits\.fetchBytesMax/,
    );
    expectConfigError(
      () => checkBrokerConfigChange('limits.frameBytesMax', '1048576'),
      /limits\.frameBytesMax: not a dynamic setting \(restart the broker/,
    );
    expectConfigError(() => checkBrokerConfigChange('nope', '1'), /nope: unknown key/);
    expectConfigError(
      () => checkBrokerConfigChange('leaderBalance.intervalMs', 'soon'),
      /leaderBalance\.intervalMs: expected an integer/,
    );
    expectConfigError(() => checkBrokerConfigChange('logLevel', 'loud'), /logLevel/);
  });

  it('a broker value wins over the cluster-wide one, which wins over the static one', () => {
    const config = defaultConfig();
    const base = staticDynamicValues(config);
    const e = effectiveDynamicConfig(
      base,
      [
        { key: 'leaderBalance.intervalMs', value: '5000' },
        { key: 'logLevel', value: 'debug' },
      ],
      [{ key: 'logLevel', value: 'warn' }],
    );
    const by = new Map(e.map((x) => [x.key, x]));
    expect(by.get('logLevel')).toEqual({
      key: 'logLevel',
      value: 'warn',
      source: 'dynamic-broker',
    });
    expect(by.get('leaderBalance.intervalMs')).toMatchObject({
      value: 5000,
      source: 'dynamic-cluster',
    });
    expect(by.get('reassignmentBytesPerSecond')).toMatchObject({ value: 0, source: 'static' });
    expect(applyDynamicConfig(config, e).sort()).toEqual(['leaderBalance.intervalMs', 'logLevel']);
    expect(config.leaderBalance.intervalMs).toBe(5000);
    expect(config.logLevel).toBe('warn');
    expect(applyDynamicConfig(config, e)).toEqual([]);
    // Unset everywhere: back to the values the process started with.
    expect(applyDynamicConfig(config, effectiveDynamicConfig(base, [], [])).sort()).toEqual([
      'leaderBalance.intervalMs',
      'logLevel',
    ]);
    expect(config.leaderBalance.intervalMs).toBe(30_000);
  });

  it('is planned, recorded, merged and unset in the metadata state, and kept by snapshots', () => {
    let s = brokers(2);
    expect(() => planAlterBrokerConfig(s, 7, { logLevel: 'debug' })).toThrow(
      expect.objectContaining({ code: ErrorCode.BROKER_ID_NOT_REGISTERED }),
    );
    expectConfigError(
      () => planAlterBrokerConfig(s, -1, { 'limits.openFilesMax': '10' }),
      /limits\.openFilesMax: not a dynamic setting/,
    );
    s = run(s, planAlterBrokerConfig(s, -1, { reassignmentBytesPerSecond: '1000000' }));
    s = run(
      s,
      planAlterBrokerConfig(s, 2, { logLevel: 'debug', 'leaderBalance.intervalMs': '1000' }),
    );
    expect(s.brokerConfigs?.get(-1)).toEqual([
      { key: 'reassignmentBytesPerSecond', value: '1000000' },
    ]);
    expect(s.brokerConfigs?.get(2)).toEqual([
      { key: 'leaderBalance.intervalMs', value: '1000' },
      { key: 'logLevel', value: 'debug' },
    ]);
    const bytes = encodeSnapshot(s);
    expect(encodeSnapshot(decodeSnapshot(bytes))).toEqual(bytes);
    expect(decodeSnapshot(bytes).brokerConfigs).toEqual(s.brokerConfigs);
    s = run(s, planAlterBrokerConfig(s, 2, { logLevel: null, 'leaderBalance.intervalMs': null }));
    s = run(s, planAlterBrokerConfig(s, -1, { reassignmentBytesPerSecond: null }));
    expect(s.brokerConfigs).toBeUndefined();
    // Nothing dynamic left: the snapshot is the plain one.
    expect(encodeSnapshot(s)).toEqual(encodeSnapshot(brokers(2)));
    expect(
      applyRecord(s, {
        type: 'alter-broker-config',
        brokerId: 9,
        changes: [{ key: 'logLevel', value: 'info' }],
      }).noop,
    ).toMatch(/broker 9 is not registered/);
  });
});
