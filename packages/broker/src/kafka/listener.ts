// The Kafka listener (config `kafka.listen`): a second TCP server on the broker whose
// connections speak the Kafka wire (kafka-wire.ts) through the same Connection machinery as the
// native listener (connection.ts: pipelining in order, in-flight request and byte bounds, frame
// size, broker-wide byte budgets, request timeouts, idle reaping, graceful drain). The broker
// owns the connections once accepted: they sit in its one set, swept and drained with the
// native ones. Requests go to handlers.ts, which calls the native handler families.
import type { AddressInfo } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { Logger } from 'pino';
import type { BrokerBudgets } from '../byte-budget.js';
import type { HostPort } from '../config.js';
import { Connection } from '../connection.js';
import type { BrokerContext } from '../handlers/context.js';
import { KAFKA_LISTENER_RANGES } from './advertised.js';
import { handleKafkaRequest, type KafkaContext } from './handlers.js';
import { type KafkaFrame, kafkaWire } from './kafka-wire.js';

export interface KafkaListenerOptions {
  readonly b: BrokerContext;
  readonly budgets: BrokerBudgets;
  /** The broker's connection set: accepted connections join it, and leave it when closed. */
  readonly connections: Set<Connection<KafkaFrame>>;
  /** False once the broker is shutting down: new sockets are refused. */
  readonly accepting: () => boolean;
}

/** A listen address as clients should dial it (a wildcard host becomes loopback). */
function dialable(a: HostPort): HostPort {
  return { host: a.host === '0.0.0.0' || a.host === '::' ? '127.0.0.1' : a.host, port: a.port };
}

export class KafkaListener {
  private readonly server: Server;
  private readonly logger: Logger;
  private _address: HostPort = { host: '', port: 0 };

  private constructor(private readonly o: KafkaListenerOptions) {
    this.logger = o.b.logger.child({ listener: 'kafka' });
    const { config, metrics } = o.b;
    const context: KafkaContext = {
      b: o.b,
      ranges: KAFKA_LISTENER_RANGES,
      // Each broker's advertised address comes from its registration in the applied metadata;
      // `kafka.brokers` (optional) overrides it, for a network where this broker must dial
      // another under a different name.
      addressOf: (nodeId) => {
        if (nodeId === config.nodeId) return this.advertised;
        const peer = config.kafka.brokers.find((p) => p.id === nodeId);
        if (peer !== undefined) return { host: peer.host, port: peer.port };
        return o.b.cluster.state.brokers.get(nodeId)?.kafka ?? undefined;
      },
    };
    const wire = kafkaWire(KAFKA_LISTENER_RANGES);
    this.server = createServer({ noDelay: true }, (socket: Socket) => {
      if (!o.accepting()) {
        socket.destroy();
        return;
      }
      metrics.connectionsTotal.inc();
      metrics.connections.inc();
      const conn = new Connection<KafkaFrame>(
        socket,
        config.limits,
        (frame, ctx) => handleKafkaRequest(context, frame, ctx),
        metrics,
        this.logger,
        (c) => {
          o.connections.delete(c);
          metrics.connections.dec();
        },
        o.budgets,
        wire,
      );
      o.connections.add(conn);
    });
    this.server.maxConnections = config.limits.connectionsMax;
    this.server.on('drop', () => metrics.connectionsRejected.inc());
  }

  /** Listens on `kafka.listen`; rejects with INVALID_CONFIG naming the address when it cannot. */
  static async start(o: KafkaListenerOptions, at: HostPort): Promise<KafkaListener> {
    const l = new KafkaListener(o);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void =>
        reject(
          new StreamBusError(
            ErrorCode.INVALID_CONFIG,
            `cannot listen on ${at.host}:${at.port} for the Kafka listener (--kafka-listen): ${err.code ?? err.message}`,
            { cause: err },
          ),
        );
      l.server.once('error', onError);
      l.server.listen(at.port, at.host, () => {
        l.server.off('error', onError);
        resolve();
      });
    });
    l._address = { host: at.host, port: (l.server.address() as AddressInfo).port };
    return l;
  }

  /** Where the listener is bound (the real port when configured as 0). */
  get address(): HostPort {
    return this._address;
  }

  /** What Metadata gives Kafka clients for this broker. */
  get advertised(): HostPort {
    return this.o.b.config.kafka.advertised ?? dialable(this._address);
  }

  /** Stops accepting; the broker drains the accepted connections with its own. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => resolve());
    });
  }
}
