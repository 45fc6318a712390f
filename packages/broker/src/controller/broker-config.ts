// Planning dynamic broker settings (issue 12; ops/dynamic-config.ts has the keys and where each
// takes effect): `alter-broker-config` for one registered broker, or -1 for every broker.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { ALL_BROKERS, checkBrokerConfigChange } from '../ops/dynamic-config.js';
import type { MetadataRecord } from './metadata-records.js';
import type { MetadataState } from './metadata-state.js';

export function planAlterBrokerConfig(
  state: MetadataState,
  brokerId: number,
  changes: Readonly<Record<string, string | null>>,
): MetadataRecord[] {
  if (brokerId !== ALL_BROKERS && !state.brokers.has(brokerId)) {
    throw new StreamBusError(
      ErrorCode.BROKER_ID_NOT_REGISTERED,
      `broker ${brokerId} is not registered`,
    );
  }
  const keys = Object.keys(changes).sort();
  if (keys.length === 0) throw new StreamBusError(ErrorCode.INVALID_REQUEST, 'no config changes');
  for (const key of keys) checkBrokerConfigChange(key, changes[key] ?? null);
  return [
    {
      type: 'alter-broker-config',
      brokerId,
      changes: keys.map((key) => ({ key, value: changes[key] ?? null })),
    },
  ];
}
