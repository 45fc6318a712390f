// Per-test set-up shared by the client's tests (not exported by the package): closing what a
// test opened, and the one-broker fixture most tests start from. Imports vitest, so only test
// files may import it.
import { afterEach, beforeEach } from 'vitest';
import { StreamBusClient } from '../client.js';
import { FakeBroker, type FakeBrokerOptions } from './fake-broker.js';

export interface Closable {
  close(): Promise<void>;
}

/** Registers an afterEach that closes, newest first, everything handed to the returned `track`. */
export function closeAfterEach(): <T extends Closable>(o: T) => T {
  const open: Closable[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });
  return (o) => {
    open.push(o);
    return o;
  };
}

/** A FakeBroker (one partition per auto-created topic) and a client of it, new for every test. */
export function fakeBrokerEachTest(options: FakeBrokerOptions = { defaultPartitions: 1 }): {
  readonly broker: FakeBroker;
  readonly client: StreamBusClient;
} {
  let broker: FakeBroker | null = null;
  let client: StreamBusClient | null = null;
  beforeEach(async () => {
    broker = await FakeBroker.start(options);
    client = new StreamBusClient({ bootstrap: broker.bootstrap });
  });
  afterEach(async () => {
    await client?.close();
    await broker?.close();
    client = null;
    broker = null;
  });
  return {
    get broker(): FakeBroker {
      if (broker === null) throw new Error('fakeBrokerEachTest: no test is running');
      return broker;
    },
    get client(): StreamBusClient {
      if (client === null) throw new Error('fakeBrokerEachTest: no test is running');
      return client;
    },
  };
}
