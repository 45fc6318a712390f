// StreamBusClient: the SDK's entry point. It owns the cluster view (connections, metadata) and
// the retry policy, and hands out producers, consumers and an admin that share them. close()
// flushes producers, ends consumers and closes every connection.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { Admin } from './admin.js';
import { Cluster, parseAddress } from './cluster.js';
import { Consumer, type ConsumerOptions } from './consumer.js';
import { ClientContext } from './context.js';
import { GroupConsumer, type GroupConsumerOptions } from './group-consumer.js';
import { ClientDefaults, DEFAULT_BOOTSTRAP } from './limits.js';
import { checkOptionNames, OptionNames } from './options.js';
import { Producer, type ProducerOptions } from './producer.js';
import type { RetryPolicy } from './retry.js';

export interface ClientOptions {
  /** "host:port", or several (comma-separated or as a list). Default 127.0.0.1:7070. */
  readonly bootstrap?: string | readonly string[];
  readonly clientId?: string;
  readonly connectTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  /** Requests in flight per broker connection (default 5). */
  readonly inflightRequestsMax?: number;
  readonly frameBytesMax?: number;
  readonly metadataMaxAgeMs?: number;
  readonly retry?: Partial<RetryPolicy>;
}

export class StreamBusClient {
  private readonly ctx: ClientContext;
  private readonly abort = new AbortController();
  private readonly producers = new Set<Producer>();
  private readonly consumers = new Set<Consumer | GroupConsumer>();
  private closed = false;

  /**
   * Checks the options (an unknown name is INVALID_ARGUMENT naming it and the nearest valid one)
   * and sets up the cluster view; nothing connects until first use.
   */
  constructor(options: ClientOptions = {}) {
    checkOptionNames('client', options, OptionNames.client);
    checkOptionNames('client.retry', options.retry, OptionNames.retry);
    const raw = options.bootstrap ?? DEFAULT_BOOTSTRAP;
    const list = (typeof raw === 'string' ? raw.split(',') : [...raw]).filter(
      (s) => s.trim() !== '',
    );
    const bootstrap = list.map(parseAddress);
    const retryPolicy: RetryPolicy = { ...ClientDefaults.retry, ...(options.retry ?? {}) };
    for (const [k, v] of Object.entries(retryPolicy)) {
      if (!Number.isInteger(v) || v < 0) {
        throw new StreamBusError(
          ErrorCode.INVALID_ARGUMENT,
          `retry.${k}: expected a non-negative integer, got ${v}`,
        );
      }
    }
    const inflightRequestsMax = options.inflightRequestsMax ?? ClientDefaults.inflightRequestsMax;
    if (!Number.isInteger(inflightRequestsMax) || inflightRequestsMax < 1) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `inflightRequestsMax: expected a positive integer, got ${inflightRequestsMax}`,
      );
    }
    const cluster = new Cluster({
      bootstrap,
      clientId: options.clientId ?? 'streambus-client',
      connectTimeoutMs: options.connectTimeoutMs ?? ClientDefaults.connectTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs ?? ClientDefaults.requestTimeoutMs,
      inflightRequestsMax,
      slotWaitersMax: ClientDefaults.slotWaitersMax,
      frameBytesMax: options.frameBytesMax ?? ClientDefaults.frameBytesMax,
      metadataMaxAgeMs: options.metadataMaxAgeMs ?? ClientDefaults.metadataMaxAgeMs,
    });
    this.ctx = new ClientContext(cluster, retryPolicy, this.abort.signal);
  }

  producer(options: ProducerOptions = {}): Producer {
    this.checkOpen();
    checkOptionNames('producer', options, OptionNames.producer);
    const p = new Producer(this.ctx, options);
    this.producers.add(p);
    return p;
  }

  /**
   * An assign-mode consumer, or with `groupId` a member of that consumer group (subscribe(),
   * committed offsets, rebalancing: group-consumer.ts).
   */
  consumer(options: GroupConsumerOptions): GroupConsumer;
  consumer(options?: ConsumerOptions): Consumer;
  consumer(options: ConsumerOptions | GroupConsumerOptions = {}): Consumer | GroupConsumer {
    this.checkOpen();
    if (typeof options === 'object' && options !== null && 'groupId' in options) {
      checkOptionNames('consumer', options, OptionNames.groupConsumer);
      const g = new GroupConsumer(this.ctx, options as GroupConsumerOptions);
      this.consumers.add(g);
      return g;
    }
    checkOptionNames('consumer', options, OptionNames.consumer);
    const c = new Consumer(this.ctx, options);
    this.consumers.add(c);
    return c;
  }

  /** `options`: none yet; any name is refused, as everywhere in the SDK. */
  admin(options: Readonly<Record<string, never>> = {}): Admin {
    this.checkOpen();
    checkOptionNames('admin', options, OptionNames.admin);
    return new Admin(this.ctx);
  }

  /** Flushes producers (bounded by their retry policy), ends consumers, closes connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.producers].map((p) => p.close()));
    await Promise.allSettled([...this.consumers].map((c) => c.close()));
    this.abort.abort();
    await this.ctx.cluster.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new StreamBusError(ErrorCode.CLIENT_CLOSED, 'client closed');
  }
}
